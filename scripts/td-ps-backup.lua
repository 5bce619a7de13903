-- td-ps-backup: full backup of a Treasure Data parent segment's configuration: the parent segment
-- (ms_config), its Audience Studio v5 folder tree (folder_config) and every segment, each fetched whole
-- (all_segments_config), as one snapshot of three JSON objects; optionally also into TD tables.
local td = require("rewind.td")
local storemod = require("rewind.store")
local snapshot = require("rewind.snapshot")
local lock = require("rewind.lock")
local json = require("rewind.json")
local log = require("rewind.log")
local task = require("rewind.task")
local errors = require("rewind.errors")
local time = require("rewind.time")

local FETCHABLE = { ["segment-batch"] = true, ["segment-realtime"] = true, ["predictive-segment"] = true }

local function tables_of(p)
  return {
    ms_config = p.stg_ms_config_tbl,
    folder_config = p.stg_folder_extract_tbl,
    all_segments_config = p.stg_seg_config_tbl,
  }
end

return {
  description = "Back up a Treasure Data parent segment, its v5 folder tree and all its segments (snapshot of ms_config, folder_config, all_segments_config)",
  params = {
    lock_ttl = { type = "duration", default = "2m", doc = "lease length of the prefix's lock (renewed while running; a lost lease stops the job)" },
    src_ms_id = { type = "string", required = true, doc = "id of the parent segment (audience) to back up" },
    root_folder_id = { type = "string", doc = "v5 root folder id (default: found through /entities/parent_segments/{id})" },
    endpoint = { type = "string", default = "US", env = "TD_ENDPOINT", doc = "TD region (US, EU, JP, AP02, AP03), API host or URL" },
    apikey = { type = "string", secret = true, env = "TD_API_KEY", required = true, doc = "TD master or write API key" },
    store = { type = "string", doc = "store URL (default: s3://<s3.bucket> when given, else the local store)" },
    prefix = { type = "string", doc = "key prefix in the store (default td/ps_<src_ms_id>)" },
    to_tables = { type = "boolean", default = false, doc = "also write the three documents into TD tables (database + stg_* tables)" },
    database = { type = "string", doc = "TD database holding the backup tables (database.yml)" },
    stg_ms_config_tbl = { type = "string", default = "ms_config_backup", doc = "table for the parent segment configuration" },
    stg_folder_curr_config_tbl = { type = "string", doc = "accepted from backup_parent_seg.yml; not needed (no temporary table is used)" },
    stg_folder_extract_tbl = { type = "string", default = "folder_config_backup", doc = "table for the folder configuration of every run" },
    stg_seg_curr_config_tbl = { type = "string", doc = "accepted from backup_parent_seg.yml; not needed (no temporary table is used)" },
    stg_seg_config_tbl = { type = "string", default = "segment_config_backup", doc = "table for the segment configuration of every run" },
    ["s3.connection_name"] = { type = "string", doc = "accepted from backup_parent_seg.yml; S3 credentials come from the environment instead" },
    ["s3.bucket"] = { type = "string", doc = "S3 bucket (used as store=s3://<bucket> when store is not given)" },
    concurrency = { type = "integer", default = 16, doc = "requests in flight at once" },
    depth = { type = "integer", default = 10, doc = "levels asked per by-folder request (deeper trees are walked further, never cut)" },
    dry_run = { type = "boolean", default = false, doc = "read everything from TD, write nothing" },
  },
  run = function(p, ctx)
    if p.to_tables and not p.database then errors.usage("to_tables=true needs database=... (the TD database for the backup tables)") end
    local c = td.client{ endpoint = p.endpoint, apikey = p.apikey, concurrency = p.concurrency }
    local store_url = p.store or (p["s3.bucket"] and ("s3://" .. p["s3.bucket"])) or nil
    local prefix = p.prefix or ("td/ps_" .. p.src_ms_id)

    local ms = c:get_parent_segment(p.src_ms_id)
    local root = p.root_folder_id or c:root_folder_id(p.src_ms_id)
    if not root then
      error("parent segment " .. p.src_ms_id .. " has no Audience Studio v5 root folder (v5 not enabled, or never run); " ..
        "pass root_folder_id=... if you know it", 0)
    end
    local tree = c:by_folder(root, { depth = p.depth })
    local items, skipped, folders = {}, {}, 0
    for _, e in ipairs(tree.data) do
      if FETCHABLE[e.type] then items[#items + 1] = e
      elseif e.type == "folder-segment" then folders = folders + 1
      else skipped[#skipped + 1] = { id = e.id, type = e.type, name = e.attributes and e.attributes.name } end
    end
    log.info("fetching segments", { count = #items, folders = folders })
    local whole = task.map(items, p.concurrency, function(e) return c:get_entity(e.type, e.id) end)
    for _, s in ipairs(skipped) do
      log.warn("entity kept as listed by by-folder (no endpoint to fetch it whole)", s)
      for _, e in ipairs(tree.data) do if tostring(e.id) == tostring(s.id) then whole[#whole + 1] = e end end
    end
    local docs = {
      ms_config = json.encode(ms),
      folder_config = json.encode(tree),
      all_segments_config = json.encode({ data = json.array(whole) }),
    }
    local summary = { parent_segment = p.src_ms_id, root_folder_id = root, folders = folders,
      segments = #items, other_entities = #skipped }
    if p.dry_run then
      summary.dry_run = true
      summary.would_write = { "ms_config", "folder_config", "all_segments_config" }
      return summary
    end

    local store = storemod.open(store_url)
    -- Under the prefix's lock, like every procedure that writes snapshots (no prune runs meanwhile).
    local m = lock.with_target(store, prefix, function()
      local snap = snapshot.begin(store, { prefix = prefix, procedure = "td-ps-backup", target = "td:" .. p.src_ms_id,
        params = ctx.public_params, tags = { parent_segment = p.src_ms_id } })
      local ok, err = pcall(function()
        for _, name in ipairs({ "ms_config", "folder_config", "all_segments_config" }) do
          snap:put(name, "json", docs[name])
        end
        if p.to_tables then
          c:create_database(p.database, { exist_ok = true })
          local t = time.now()
          for name, tbl in pairs(tables_of(p)) do
            c:create_table(p.database, tbl, { exist_ok = true })
            c:import(p.database, tbl, { { time = math.floor(t), snapshot_id = snap.id, src_ms_id = p.src_ms_id,
              root_folder_id = root, config = docs[name] } })
          end
        end
      end)
      if not ok then
        pcall(snap.abort, snap)
        error(err, 0)
      end
      return snap:commit({ td = summary })
    end, { owner = "td-ps-backup", ttl = p.lock_ttl })
    summary.snapshot = m.id
    summary.store = store.url
    summary.objects = {}
    for _, o in ipairs(m.objects) do summary.objects[#summary.objects + 1] = o.key end
    if p.to_tables then summary.tables = tables_of(p) end
    return summary
  end,
}
