-- druid-restore: restore a druid-backup snapshot (source document 001), safely:
-- 1) take the lock; 2) verify every object of the snapshot (size + sha256) before touching anything;
-- 3) refuse a database that already has druid_ tables (or a non-empty deep-storage dir) unless replace=true;
-- 4) safety snapshot of what is there now, tagged "safety" (source 003), unless safety_backup=false;
-- 5) extract the segments into a temporary sibling directory (verified again while streaming);
-- 6) restore the metadata dump (pg_restore, one transaction: a failure changes nothing); 7) swap the directory in; 8) Metabase only when asked;
-- 9) check every used segment's loadSpec file exists (path_map rewrites prefixes); missing files are listed
-- by datasource and interval and the run fails; 10) optionally wait for the coordinator and run a start command.
local store = require("rewind.store")
local snapshot = require("rewind.snapshot")
local lock = require("rewind.lock")
local druid = require("rewind.druid")
local tar = require("rewind.tar")
local fs = require("rewind.fs")
local exec = require("rewind.exec")
local env = require("rewind.env")
local log = require("rewind.log")
local time = require("rewind.time")
local errors = require("rewind.errors")

local function non_empty_dir(path)
  local st = fs.stat(path)
  return st and st.type == "dir" and #fs.list(path) > 0
end

local function find_object(m, name)
  for _, o in ipairs(m.objects or {}) do
    if o.name == name then return o end
  end
  return nil
end

-- Extracts a tar object into a fresh sibling of `dest`, returns the directory holding the tree.
local function extract_beside(s, name, dest, backed_dir)
  local parent = dest:gsub("/+$", ""):match("^(.*)/[^/]+$") or "."
  if parent == "" then parent = "/" end
  fs.mkdir(parent)
  local tmp = string.format("%s/.rewind-restore-%s-%d", parent, name, env.pid())
  fs.remove(tmp, { recursive = true })
  fs.mkdir(tmp)
  -- An indexed deep-storage archive is composed from every archive it reads (each file's sha256 checked).
  local ok, err = pcall(function()
    local indexed = s.manifest.index == name .. "-index"
    local from = indexed and require("rewind.increments").compose(s) or s:reader(name)
    -- Deep storage's totals are in the manifest (its index's counts, or druid.files); Metabase's are not.
    local progress = { label = "druid-restore " .. name }
    if name == druid.OBJECTS.shared then
      local t = indexed and require("rewind.increments").totals(s) or {}
      progress.files, progress.bytes = t.files or (s.manifest.druid or {}).files, t.bytes
    end
    return tar.extract({ from = from, to = tmp, progress = progress })
  end)
  if not ok then
    fs.remove(tmp, { recursive = true })
    error(err, 0)
  end
  return tmp, druid.extracted_root(tmp, backed_dir)
end

-- Puts `root` (inside `tmp`) in place of `dest`; the old tree is removed only after the swap.
local function swap_in(tmp, root, dest)
  local old
  if fs.exists(dest) then
    old = dest:gsub("/+$", "") .. ".rewind-old-" .. env.pid()
    fs.rename(dest, old)
  end
  fs.rename(root, dest)
  if old then fs.remove(old, { recursive = true }) end
  if root ~= tmp then fs.remove(tmp, { recursive = true }) end
end


return {
  description = "Restore a Druid backup (metadata DB, deep storage, optionally Metabase) and check every used segment's file",
  params = {
    lock_ttl = { type = "duration", default = "2m", doc = "lease length of the prefix's lock (renewed while running; a lost lease stops the job)" },
    snapshot = { type = "string", doc = "snapshot id YYYYMMDD-HHMMSS (default: the newest complete one)" },
    store = { type = "string", doc = "store URL (default: REWIND_STORE, the config file's store, else the local store)" },
    prefix = { type = "string", default = "druid", doc = "snapshot prefix in the store" },
    target = { type = "string", default = "druid", doc = "stack name recorded on the safety snapshot" },
    pg_host = { type = "string", env = "PGHOST", doc = "target PostgreSQL host or socket directory (PGHOST)" },
    pg_port = { type = "integer", env = "PGPORT", default = 5432, doc = "target PostgreSQL port (PGPORT)" },
    pg_user = { type = "string", env = "PGUSER", doc = "target PostgreSQL user (PGUSER)" },
    pg_database = { type = "string", env = "PGDATABASE", default = "druid", doc = "target metadata database (created when missing)" },
    pg_password = { type = "string", secret = true, env = "PGPASSWORD", doc = "password (secret; PGPASSWORD)" },
    deep_storage = { type = "string", default = "/opt/shared", doc = "deep-storage directory to restore into" },
    metabase_dir = { type = "string", doc = "Metabase data directory to restore into (with restore_metabase=true)" },
    metabase_pg_database = { type = "string", doc = "Metabase database to restore into (with restore_metabase=true)" },
    restore_metabase = { type = "boolean", default = false, doc = "also restore Metabase (default: leave it, as the source allows)" },
    replace = { type = "boolean", default = false, doc = "overwrite a database that has druid_ tables / a non-empty deep-storage dir" },
    safety_backup = { type = "boolean", default = true, doc = "snapshot the current state (tag safety) before overwriting" },
    path_map = { type = "list", doc = "FROM=TO prefix rewrites for loadSpec paths (default: backed-up dir=deep_storage)" },
    coordinator_url = { type = "string", doc = "Druid coordinator URL; when set, wait until every restored datasource is 100% loaded" },
    load_timeout = { type = "duration", default = "10m", doc = "how long to wait for the coordinator" },
    start_command = { type = "string", doc = "shell command run after the restore (e.g. docker-compose up -d)" },
    dry_run = { type = "boolean", default = false, doc = "print the plan, change nothing" },
  },
  run = function(p, ctx)
    local conn = { host = p.pg_host, port = p.pg_port, user = p.pg_user, database = p.pg_database,
      password = p.pg_password }
    if conn.password then env.mark_secret(conn.password) end
    if p.restore_metabase and not (p.metabase_dir or p.metabase_pg_database) then
      errors.usage("restore_metabase=true needs metabase_dir or metabase_pg_database")
    end
    local user_map = druid.parse_path_map(p.path_map or {})
    local st = store.open(p.store)

    return lock.with_target(st, p.prefix, function()
      local s = snapshot.open(st, p.prefix, p.snapshot)
      local m = s.manifest
      for _, name in ipairs({ druid.OBJECTS.metadata, druid.OBJECTS.shared }) do
        if not find_object(m, name) then
          error("snapshot " .. m.id .. " has no " .. name .. " object: not a druid-backup snapshot", 0)
        end
      end
      local backed_dir = (m.druid and m.druid.deep_storage) or (m.params and m.params.deep_storage) or "/opt/shared"
      local path_map = user_map
      if #path_map == 0 and backed_dir ~= p.deep_storage then path_map = { { backed_dir, p.deep_storage } } end
      local metabase_obj = find_object(m, druid.OBJECTS.metabase)
      if p.restore_metabase and not metabase_obj then
        error("snapshot " .. m.id .. " has no metabase_data object to restore", 0)
      end

      -- Refusals come before any work.
      local existing = druid.druid_tables(conn)
      if #existing > 0 and not p.replace then
        errors.usage(string.format("database %s already has %d druid_ tables (%s, ...); pass replace=true to overwrite it",
          conn.database, #existing, existing[1]))
      end
      if non_empty_dir(p.deep_storage) and not p.replace then
        errors.usage("deep-storage directory " .. p.deep_storage .. " is not empty; pass replace=true to overwrite it")
      end

      local plan = {
        "restore snapshot " .. m.id .. " (" .. tostring(m.started_at) .. ") from " .. p.prefix,
        "verify " .. #m.objects .. " objects (size + sha256) before changing anything",
        p.safety_backup and "safety snapshot of the current database and deep storage (tag safety)" or "no safety snapshot (safety_backup=false)",
        "restore druid_metadata_dump into database " .. conn.database .. (#existing > 0 and " (replacing " .. #existing .. " druid_ tables)" or ""),
        "extract druid_shared into " .. p.deep_storage,
      }
      if p.restore_metabase then
        plan[#plan + 1] = "restore metabase_data into " .. (p.metabase_dir or p.metabase_pg_database)
      elseif metabase_obj then
        plan[#plan + 1] = "leave Metabase as it is (restore_metabase=false)"
      end
      for _, pm in ipairs(path_map) do plan[#plan + 1] = "check loadSpec paths with " .. pm[1] .. " → " .. pm[2] end
      if p.coordinator_url then plan[#plan + 1] = "wait for " .. p.coordinator_url .. " loadstatus 100% (timeout " .. time.format_duration(p.load_timeout) .. ")" end
      if p.start_command then plan[#plan + 1] = "run start command" end
      if p.dry_run then
        for _, l in ipairs(plan) do print(l) end
        return { dry_run = true, snapshot = m.id, plan = plan }
      end

      -- 1) verify everything first
      s:verify_or_fail()
      log.info("snapshot verified", { snapshot = m.id, objects = #m.objects })

      -- 2) safety snapshot of the current state
      local safety_id
      if p.safety_backup then
        local has_db = #existing > 0
        local has_dir = non_empty_dir(p.deep_storage)
        if has_db or has_dir then
          local sdir = p.deep_storage
          if not has_dir then sdir = fs.temp_dir("empty") end
          local sm = druid.backup(st, { prefix = p.prefix, target = p.target, conn = conn, deep_storage = sdir,
            skip_metadata = not druid.database_exists(conn, conn.database), full = true,
            tags = { "safety" }, params = ctx.public_params, procedure = "druid-backup" })
          safety_id = sm.id
          log.info("safety snapshot taken", { snapshot = safety_id })
        else
          log.info("nothing to save in a safety snapshot (no druid tables, empty deep storage)")
        end
      end

      -- 3) segments into a temporary sibling (nothing overwritten yet)
      local tmp, root = extract_beside(s, druid.OBJECTS.shared, p.deep_storage, backed_dir)
      local ok, err = pcall(function()
        -- 4) the metadata dump, in one transaction: a failure leaves the database exactly as it was
        -- (why one transaction rather than a fresh database and a swap: see druid.restore_dump)
        druid.restore_dump(conn, conn.database, s:reader(druid.OBJECTS.metadata), { clean = #existing > 0 })
      end)
      if not ok then
        fs.remove(tmp, { recursive = true })
        error(err, 0)
      end
      -- 5) swap the directory in
      swap_in(tmp, root, p.deep_storage)

      -- 6) Metabase, only when asked
      if p.restore_metabase then
        if metabase_obj.ext == druid.DUMP_EXT or tostring(metabase_obj.key):match("%.dump$") then
          local db = p.metabase_pg_database
          if not db then error("metabase_data is a database dump: give metabase_pg_database", 0) end
          druid.restore_dump(conn, db, s:reader(druid.OBJECTS.metabase), { clean = true })
        else
          local dir = p.metabase_dir
          if not dir then error("metabase_data is a directory archive: give metabase_dir", 0) end
          local mtmp, mroot = extract_beside(s, druid.OBJECTS.metabase, dir, m.params and m.params.metabase_dir)
          swap_in(mtmp, mroot, dir)
        end
      end

      -- 7) check every used segment's file
      local check = druid.check_segments(conn, path_map)
      local datasources = {}
      for ds in pairs(check.datasources) do datasources[#datasources + 1] = ds end
      table.sort(datasources)
      local result = { snapshot = m.id, safety_snapshot = safety_id, segments_checked = check.checked,
        datasources = datasources, missing = #check.missing }
      if #check.missing > 0 then
        local lines = {}
        for _, x in ipairs(check.missing) do
          lines[#lines + 1] = string.format("%s %s: %s%s", x.datasource, x.interval, x.problem,
            x.path and (" (" .. x.path .. ")") or "")
        end
        error(string.format("druid-restore: %d of %d used segments have no file:\n  %s", #check.missing, check.checked,
          table.concat(lines, "\n  ")), 0)
      end
      log.info("every used segment has its file", { segments = check.checked, datasources = #datasources })

      if p.start_command then
        exec.run({ p.start_command, shell = true })
      end
      if p.coordinator_url then
        druid.wait_loaded(p.coordinator_url, check.datasources, p.load_timeout)
        result.loaded = true
      end
      return result
    end, { ttl = p.lock_ttl, owner = "druid-restore" })
  end,
}
