-- td-ps-restore: one command for the three manual parts of the source's restore: creates the parent
-- segment under a new name, runs it and waits for its v5 root folder, then rebuilds the folder tree and
-- every segment in dependency order. Resumable: the old → new id map is kept in the store as it goes.
local td = require("rewind.td")
local R = require("rewind.td_restore")
local storemod = require("rewind.store")
local snapshot = require("rewind.snapshot")
local lock = require("rewind.lock")
local json = require("rewind.json")
local log = require("rewind.log")
local errors = require("rewind.errors")

local time = require("rewind.time")

-- duration params arrive as seconds, their defaults as text
local function secs(v)
  if type(v) == "string" then return time.duration(v) end
  return v
end

local NAMES = { "ms_config", "folder_config", "all_segments_config" }

return {
  description = "Restore a Treasure Data parent segment, its v5 folders and segments from a td-ps-backup snapshot (or TD tables)",
  params = {
    lock_ttl = { type = "duration", default = "2m", doc = "lease length of the prefix's lock (renewed while running; a lost lease stops the job)" },
    ms_name = { type = "string", doc = "name of the new parent segment (required unless root_folder_id is given)" },
    src_ms_id = { type = "string", doc = "id of the backed-up parent segment (names the default prefix td/ps_<id>)" },
    root_folder_id = { type = "string", doc = "restore folders and segments into this existing v5 root folder instead of creating a parent segment" },
    endpoint = { type = "string", default = "US", env = "TD_ENDPOINT", doc = "TD region (US, EU, JP, AP02, AP03), API host or URL" },
    apikey = { type = "string", secret = true, env = "TD_API_KEY", doc = "TD master or write API key (not needed for dry_run from a store)" },
    store = { type = "string", doc = "store URL holding the backup (default: s3://<aws_bucket_name> when given, else the local store)" },
    prefix = { type = "string", doc = "key prefix of the backup (default td/ps_<src_ms_id>)" },
    snapshot = { type = "string", doc = "snapshot id YYYYMMDD-HHMMSS (default: newest complete)" },
    from_tables = { type = "boolean", default = false, doc = "read the backup from TD tables (database + stg_* tables) instead of a store" },
    database = { type = "string", doc = "TD database of the backup tables" },
    stg_ms_config_tbl = { type = "string", default = "ms_config_backup", doc = "table with parent segment configurations" },
    stg_folder_extract_tbl = { type = "string", default = "folder_config_backup", doc = "table with folder configurations" },
    stg_seg_config_tbl = { type = "string", default = "segment_config_backup", doc = "table with segment configurations" },
    on_conflict = { type = "string", default = "skip", choices = { "skip", "suffix" }, doc = "a segment whose name exists: skip (use the existing one) or suffix (create 'name (2)')" },
    only_segments = { type = "list", doc = "restore only these segments (names or old ids) and what they reference" },
    concurrency = { type = "integer", default = 16, doc = "creations in flight at once" },
    run_timeout = { type = "duration", default = "2h", doc = "how long to wait for the parent segment run" },
    poll = { type = "duration", default = "10s", doc = "how often to poll the run" },
    dry_run = { type = "boolean", default = false, doc = "print the plan (what would be created, in order, with reference rewrites); change nothing" },
    -- accepted as they are in the source's restore_parent_seg.yml
    aws_bucket_name = { type = "string", doc = "restore_parent_seg.yml: S3 bucket (store=s3://<bucket>)" },
    ms_table_restore = { type = "string", doc = "restore_parent_seg.yml: accepted, not needed" },
    folder_stg_tbl = { type = "string", doc = "restore_parent_seg.yml: accepted, not needed" },
    aws_ms_config_path = { type = "string", doc = "restore_parent_seg.yml: accepted, not needed (the snapshot manifest names the objects)" },
    aws_folder_config_path = { type = "string", doc = "restore_parent_seg.yml: accepted, not needed" },
    restore_ps_config_v4 = { type = "boolean", doc = "restore_parent_seg.yml: accepted; one run does all parts" },
    restore_folders_and_segments_v5 = { type = "boolean", doc = "restore_parent_seg.yml: accepted; one run does all parts" },
  },
  run = function(p, ctx)
    if not p.ms_name and not p.root_folder_id then
      errors.usage("pass ms_name=... (the new parent segment's name) or root_folder_id=... (an existing v5 root folder)")
    end
    if p.from_tables and not p.database then errors.usage("from_tables=true needs database=...") end
    if not p.from_tables and not p.prefix and not p.src_ms_id then
      errors.usage("pass prefix=... or src_ms_id=... to find the backup in the store")
    end
    local need_client = not (p.dry_run and not p.from_tables)
    if need_client and not p.apikey then errors.usage("missing required param 'apikey': pass apikey=... or set TD_API_KEY") end
    local c = need_client and td.client{ endpoint = p.endpoint, apikey = p.apikey, concurrency = p.concurrency } or nil
    local prefix = p.prefix or ("td/ps_" .. tostring(p.src_ms_id))
    local store_url = p.store or (p.aws_bucket_name and ("s3://" .. p.aws_bucket_name)) or nil

    -- the backup
    local backup, source = {}, nil
    if p.from_tables then
      local tbls = { ms_config = p.stg_ms_config_tbl, folder_config = p.stg_folder_extract_tbl,
        all_segments_config = p.stg_seg_config_tbl }
      local id = p.snapshot
      for _, name in ipairs(NAMES) do
        local where = id and (" WHERE snapshot_id = '" .. id:gsub("'", "''") .. "'") or ""
        local rows = c:query(p.database, "SELECT snapshot_id, config FROM " .. tbls[name] .. where ..
          " ORDER BY time DESC LIMIT 1")
        if #rows == 0 then error("no backup in " .. p.database .. "." .. tbls[name] .. (id and (" for snapshot " .. id) or ""), 0) end
        id = id or rows[1][1]
        backup[name] = json.decode(rows[1][2])
      end
      source = "td:" .. p.database .. "@" .. id
    else
      local store = storemod.open(store_url)
      -- Read (and check) the three objects under the prefix's lock, so a prune cannot remove them meanwhile.
      lock.with_target(store, prefix, function()
        local s = snapshot.open(store, prefix, p.snapshot)
        for _, name in ipairs(NAMES) do backup[name] = json.decode(s:get(name)) end
        source = store.url .. "/" .. prefix .. "@" .. s.manifest.id
      end, { owner = "td-ps-restore", ttl = p.lock_ttl })
    end

    local plan = R.plan(backup, { only = p.only_segments })
    local state_store = storemod.open(store_url)
    local state_key = string.format("%s/restore-state/%s.json", prefix,
      (p.ms_name or ("root-" .. p.root_folder_id)):gsub("[^%w._-]", "_"))
    local state = state_store:exists(state_key) and json.decode(state_store:get(state_key)) or { source = source, map = {} }
    if state.done and state.source ~= source then
      log.warn("a finished restore under this name exists; reusing its id map", { previous = state.source })
    end

    if p.dry_run then
      local lines = R.describe(plan, state.map)
      local plan_lines = {}
      if not state.audience_id and not p.root_folder_id then
        plan_lines[1] = "create parent segment '" .. p.ms_name .. "', run it and wait for its v5 root folder"
      end
      for _, l in ipairs(lines) do plan_lines[#plan_lines + 1] = l end
      return { dry_run = true, source = source, plan = plan_lines, segments = plan.count, skipped = plan.skipped }
    end

    local r = R.restore({ client = c, backup = backup, ms_name = p.ms_name, root_folder_id = p.root_folder_id,
      state = state, save = function(st) state_store:put(state_key, json.encode(st)) end,
      on_conflict = p.on_conflict, concurrency = p.concurrency, only = p.only_segments,
      run_timeout = secs(p.run_timeout), poll = secs(p.poll) })
    r.source = source
    r.state = state_key
    for _, s in ipairs(r.skipped) do log.warn("skipped", s) end
    return r
  end,
}
