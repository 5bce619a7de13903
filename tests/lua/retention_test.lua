-- Table-driven tests of rewind.retention (restic `forget` semantics plus rewind's safety rules).
local t = require("rewind.testing")
local retention = require("rewind.retention")
local time = require("rewind.time")

-- A manifest for id "YYYYMMDD-HHMMSS" (UTC); started_at derived from the id.
local function snap(id, opts)
  opts = opts or {}
  local y, mo, d, h, mi, s = id:match("^(%d%d%d%d)(%d%d)(%d%d)%-(%d%d)(%d%d)(%d%d)$")
  return {
    id = id,
    procedure = opts.procedure or "druid-backup",
    target = opts.target or "prod",
    tags = opts.tags or {},
    started_at = string.format("%s-%s-%sT%s:%s:%sZ", y, mo, d, h, mi, s),
  }
end

local function ids(list)
  local out = {}
  for _, e in ipairs(list) do out[#out + 1] = e.manifest.id end
  table.sort(out)
  return out
end

local function reasons_of(plan, id)
  for _, e in ipairs(plan.keep) do
    if e.manifest.id == id then return table.concat(e.reasons, "; ") end
  end
  return nil
end

-- Daily snapshots at 03:00 from 2026-10-01 to 2026-11-20 (51 days), plus extra ones in some days.
local function daily(from_day, to_day, hhmmss, opts)
  local out = {}
  for day in time.days(from_day, to_day) do
    out[#out + 1] = snap(day:gsub("-", "") .. "-" .. (hhmmss or "030000"), opts)
  end
  return out
end

local NOW = time.parse("2026-11-20T12:00:00Z")

local cases = {
  {
    name = "keep_last keeps the N newest",
    snaps = { snap("20261101-010000"), snap("20261102-010000"), snap("20261103-010000"), snap("20261104-010000") },
    policy = { keep_last = 2 },
    keep = { "20261103-010000", "20261104-010000" },
    reason = { "20261104-010000", "keep-last 1" },
  },
  {
    name = "keep_hourly keeps the newest of each hour",
    snaps = { snap("20261101-100000"), snap("20261101-101500"), snap("20261101-104500"),
              snap("20261101-110000"), snap("20261101-113000"), snap("20261101-090000") },
    policy = { keep_hourly = 2 },
    keep = { "20261101-104500", "20261101-113000" },
    reason = { "20261101-104500", "keep-hourly 2026-11-01 10h" },
  },
  {
    name = "keep_daily keeps the newest of each of the N most recent days with snapshots",
    snaps = { snap("20261118-010000"), snap("20261118-230000"), snap("20261119-120000"),
              snap("20261115-120000"), snap("20261110-120000") },
    policy = { keep_daily = 3 },
    keep = { "20261115-120000", "20261118-230000", "20261119-120000" },
    reason = { "20261118-230000", "keep-daily 2026-11-18" },
  },
  {
    name = "keep_weekly uses ISO weeks (Monday starts a week; 2026-01-01 is in 2026-W01)",
    -- 2025-12-28 is a Sunday (2025-W52); 2025-12-29 Monday is 2026-W01; 2026-01-04 Sunday still W01.
    snaps = { snap("20251228-120000"), snap("20251229-120000"), snap("20260104-120000"),
              snap("20260105-120000"), snap("20251221-120000") },
    policy = { keep_weekly = 3 },
    keep = { "20251228-120000", "20260104-120000", "20260105-120000" },
    reason = { "20260104-120000", "keep-weekly 2026-W01" },
  },
  {
    name = "keep_monthly",
    snaps = { snap("20260930-235959"), snap("20261001-000000"), snap("20261015-000000"),
              snap("20261101-000000"), snap("20260815-000000") },
    policy = { keep_monthly = 2 },
    keep = { "20261015-000000", "20261101-000000" },
    reason = { "20261015-000000", "keep-monthly 2026-10" },
  },
  {
    name = "keep_yearly",
    snaps = { snap("20241231-235959"), snap("20250101-000000"), snap("20251231-120000"),
              snap("20260601-000000"), snap("20230601-000000") },
    policy = { keep_yearly = 3 },
    keep = { "20241231-235959", "20251231-120000", "20260601-000000" },
    reason = { "20241231-235959", "keep-yearly 2024" },
  },
  {
    name = "keep_daily -1 keeps one per day for every day",
    snaps = { snap("20261101-010000"), snap("20261101-020000"), snap("20261102-010000"), snap("20261103-010000") },
    policy = { keep_daily = -1 },
    keep = { "20261101-020000", "20261102-010000", "20261103-010000" },
  },
  {
    name = "rules are independent: the union is kept and every rule is named",
    snaps = { snap("20261101-010000"), snap("20261115-010000"), snap("20261120-010000"),
              snap("20261120-020000"), snap("20261001-010000") },
    policy = { keep_last = 1, keep_daily = 2, keep_monthly = 2 },
    keep = { "20261001-010000", "20261115-010000", "20261120-020000" },
    reason = { "20261120-020000", "keep-last 1; keep-daily 2026-11-20; keep-monthly 2026-11" },
  },
  {
    name = "60-day keep_within on daily backups (source 003) keeps the window and the newest before it",
    snaps = daily("2026-08-01", "2026-11-20"),
    policy = { keep_within = "60d" },
    -- newest 2026-11-20 03:00; window edge 2026-09-21 03:00 (inclusive) → 61 snapshots + 2026-09-20.
    count_keep = 62,
    keep_has = { "20260921-030000", "20260920-030000" },
    remove_has = { "20260919-030000", "20260801-030000" },
    reason = { "20260920-030000", "keep-within boundary" },
  },
  {
    name = "keep_within is measured from the group's newest snapshot, not from now",
    snaps = { snap("20250101-000000"), snap("20250105-000000"), snap("20241201-000000"), snap("20241101-000000") },
    policy = { keep_within = 10 * 86400 },
    keep = { "20241201-000000", "20250101-000000", "20250105-000000" },
  },
  {
    name = "ties: two snapshots with the same timestamp take one daily bucket",
    snaps = { snap("20261101-010000", { target = "a" }), snap("20261101-010000", { target = "a" }) },
    policy = { keep_daily = 5 },
    -- identical ids in one group: only one is kept by the daily rule
    count_keep = 1,
  },
  {
    name = "ties: keep_last counts each snapshot, even with the same timestamp",
    snaps = { snap("20261101-010000", { target = "a" }), snap("20261101-010000", { target = "a" }),
              snap("20261031-010000", { target = "a" }) },
    policy = { keep_last = 2 },
    keep = { "20261101-010000", "20261101-010000" },
  },
  {
    name = "ties broken by id so plans are deterministic",
    snaps = {
      (function() local m = snap("20261101-010000"); m.id = "20261101-010000"; return m end)(),
      (function() local m = snap("20261101-010000"); m.id = "20261101-010000b"; return m end)(),
    },
    policy = { keep_last = 1 },
    keep = { "20261101-010000b" },
  },
  {
    name = "UTC buckets: 23:30 and 00:30 UTC are different days, no DST shift across 2026-10-25",
    snaps = { snap("20261024-233000"), snap("20261025-003000"), snap("20261025-013000"), snap("20261025-023000") },
    policy = { keep_daily = 2, keep_hourly = 10 },
    keep = { "20261024-233000", "20261025-003000", "20261025-013000", "20261025-023000" },
    reason = { "20261025-023000", "keep-daily 2026-10-25" },
  },
  {
    name = "timezone: Asia/Tokyo (UTC+9) puts 16:00Z and 14:00Z on different local days",
    snaps = { snap("20261101-140000"), snap("20261101-160000"), snap("20261101-100000") },
    policy = { keep_daily = 2, timezone = "Asia/Tokyo" },
    -- local: 11-01 19:00, 11-01 23:00, 11-02 01:00 → days 11-01 (newest 14:00Z) and 11-02 (16:00Z)
    keep = { "20261101-140000", "20261101-160000" },
    reason = { "20261101-160000", "keep-daily 2026-11-02" },
  },
  {
    name = "groups are judged separately (procedure and target)",
    snaps = { snap("20261101-010000", { target = "a" }), snap("20261102-010000", { target = "a" }),
              snap("20261101-010000", { target = "b" }), snap("20261103-010000", { target = "b" }),
              snap("20261104-010000", { procedure = "other" }) },
    policy = { keep_last = 1 },
    keep = { "20261102-010000", "20261103-010000", "20261104-010000" },
  },
  {
    name = "keep_tags keeps tagged snapshots forever",
    snaps = { snap("20200101-000000", { tags = { "safety" } }), snap("20210101-000000", { tags = { "x" } }),
              snap("20261101-000000"), snap("20261102-000000") },
    policy = { keep_last = 1, keep_tags = { "safety" } },
    keep = { "20200101-000000", "20261102-000000" },
    reason = { "20200101-000000", "keep-tag safety" },
  },
  {
    name = "safety: the newest snapshot of a group is kept even when no rule keeps it",
    snaps = { snap("20261101-000000"), snap("20261102-000000", { tags = { "x" } }) },
    policy = { keep_tags = { "safety" } },
    keep = { "20261102-000000" },
    reason = { "20261102-000000", "newest of its group" },
  },
}

for _, c in ipairs(cases) do
  t.test(c.name, function()
    local plan = retention.plan(c.snaps, c.policy, NOW)
    if c.keep then t.eq(ids(plan.keep), c.keep, "kept") end
    if c.count_keep then t.eq(#plan.keep, c.count_keep, "number kept") end
    t.eq(#plan.keep + #plan.remove, #c.snaps, "every snapshot is either kept or removed")
    for _, id in ipairs(c.keep_has or {}) do t.ok(reasons_of(plan, id), id .. " should be kept") end
    for _, id in ipairs(c.remove_has or {}) do t.ok(not reasons_of(plan, id), id .. " should be removed") end
    if c.reason then t.contains(reasons_of(plan, c.reason[1]) or "", c.reason[2]) end
    for _, e in ipairs(plan.remove) do t.eq(e.reasons, { "no rule keeps it" }) end
  end)
end

t.test("grace period: incomplete snapshots younger than grace are kept, older ones removed", function()
  local inc = {
    { id = "20261120-110000", keys = { "druid/20261120/druid_shared_110000.tar.zst" } }, -- 1 h old
    { id = "20261120-000000", keys = { "a" }, started_at = "2026-11-20T00:00:00Z" },      -- 12 h old
  }
  local plan = retention.plan({ snap("20261119-000000") }, { keep_last = 1 }, NOW, inc)
  t.eq(#plan.incomplete_keep, 1)
  t.eq(plan.incomplete_keep[1].incomplete.id, "20261120-110000")
  t.contains(plan.incomplete_keep[1].reasons[1], "grace")
  t.eq(#plan.incomplete_remove, 1)
  t.eq(plan.incomplete_remove[1].incomplete.id, "20261120-000000")
  local plan2 = retention.plan({}, { keep_last = 1, grace = "30m" }, NOW, inc)
  t.eq(#plan2.incomplete_remove, 2, "both are older than a 30 min grace")
end)

t.test("bad policies are clear errors", function()
  t.raises(function() retention.plan({ snap("20261101-000000") }, { keep_daily = 1.5 }, NOW) end, "keep_daily")
  t.raises(function() retention.plan({ snap("20261101-000000") }, { keep_within = "soon" }, NOW) end, "keep_within")
  t.raises(function() retention.plan({ snap("20261101-000000") }, { keep_daily = 1, timezone = "Mars/Olympus" }, NOW) end,
    "Mars/Olympus")
end)

t.test("has_rules", function()
  t.ok(not retention.has_rules({}))
  t.ok(retention.has_rules({ keep_last = 1 }))
  t.ok(retention.has_rules({ keep_within = "60d" }))
  t.ok(retention.has_rules({ keep_tags = { "safety" } }))
end)

t.test("10,000 snapshots plan quickly", function()
  local list = {}
  local base = time.parse("2025-01-01T00:00:00Z")
  for i = 1, 10000 do
    local ts = base + i * 3600
    list[i] = { id = time.format(ts, "%Y%m%d-%H%M%S"), procedure = "druid-backup", target = "prod",
                started_at = time.format(ts), tags = {} }
  end
  local t0 = time.monotonic()
  local plan = retention.plan(list, { keep_daily = 7, keep_weekly = 4, keep_monthly = 12, keep_within = "2d" }, NOW)
  local dt = time.monotonic() - t0
  t.ok(dt < 5, "took " .. dt .. " s")
  t.eq(#plan.keep + #plan.remove, 10000)
end)
