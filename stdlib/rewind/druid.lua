-- rewind.druid: the Druid + PostgreSQL metadata + Metabase procedures (source document 001).
-- Backup: metadata dump first, then the deep-storage tree (Druid writes a segment's files before it
-- publishes the row, so every row in the dump has its files in the later copy), then Metabase.
-- Restore: verify every object before touching anything, safety snapshot, extract into a temporary
-- sibling directory, restore the dump, swap the directory in, then check every used segment's file.
--
-- Connection tables (`conn`): {host, port, user, database, password}. The password travels to pg_dump,
-- pg_restore and psql in the PGPASSWORD environment variable only, never in argv or logs.
local exec = require("rewind.exec")
local fs = require("rewind.fs")
local json = require("rewind.json")
local log = require("rewind.log")
local tar = require("rewind.tar")
local snapshot = require("rewind.snapshot")
local http = require("rewind.http")
local task = require("rewind.task")
local time = require("rewind.time")

local increments = require("rewind.increments")

local M = {}

M.OBJECTS = { metadata = "druid_metadata_dump", shared = "druid_shared", metabase = "metabase_data" }
M.DUMP_EXT = "dump"       -- pg_dump custom format (-Fc), compressed by pg_dump; restored with pg_restore
M.TAR_EXT = "tar.zst"

--- Environment for the PostgreSQL client programs.
function M.pg_env(conn, database)
  local env = {
    PGHOST = conn.host, PGPORT = conn.port and tostring(conn.port) or nil, PGUSER = conn.user,
    PGDATABASE = database or conn.database, PGCONNECT_TIMEOUT = "10",
  }
  if conn.password and conn.password ~= "" then env.PGPASSWORD = conn.password end
  return env
end

local function psql(conn, sql, opts)
  opts = opts or {}
  local r = exec.run({ "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-",
    env = M.pg_env(conn, opts.database), stdin = sql, check = opts.check ~= false })
  return r
end
M.psql = psql

--- Lines of a psql query (unaligned, tuples only), run against `database` (default conn.database).
function M.query_lines(conn, sql, database)
  local r = psql(conn, sql, { database = database })
  local out = {}
  for line in r.stdout:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

local function quote_literal(s)
  return "'" .. tostring(s):gsub("'", "''") .. "'"
end
local function quote_ident(s)
  return '"' .. tostring(s):gsub('"', '""') .. '"'
end

--- True when the database exists on the server (asked through the `postgres` maintenance database).
function M.database_exists(conn, database)
  local lines = M.query_lines(conn, "select 1 from pg_database where datname = " .. quote_literal(database), "postgres")
  return #lines > 0
end

function M.create_database(conn, database)
  psql(conn, "create database " .. quote_ident(database), { database = "postgres" })
end

function M.drop_database(conn, database)
  psql(conn, "drop database if exists " .. quote_ident(database), { database = "postgres" })
end

--- Restores a `pg_dump -Fc` stream (`reader`) into `database` so that a failure changes nothing.
---
--- pg_restore runs with --single-transaction: the drops (--clean, when opts.clean), the creates, every
--- table's data and the indexes commit together or not at all. A failure at any point (a dump whose end is
--- damaged, a conflicting object, pg_restore or rewind killed, the connection lost) rolls everything back
--- in the server, so the database is exactly as it was. Chosen over "restore into a fresh database, then
--- swap the names" because PostgreSQL guarantees it even against kill -9, and the database keeps its
--- identity: owner, grants, ALTER DATABASE settings, extensions and schemas outside the dump stay, and
--- nothing needs CREATEDB or a moment without connections (RENAME DATABASE refuses while anyone is
--- connected, and two renames are not atomic). The cost: no parallel restore (-j), and the restored
--- tables stay locked until the commit, which suits metadata databases (Druid stopped during a restore).
--- A database missing beforehand is created for the restore and dropped again when it fails.
function M.restore_dump(conn, database, reader, opts)
  opts = opts or {}
  local created = false
  if not M.database_exists(conn, database) then
    M.create_database(conn, database)
    created = true
  end
  local args = { "pg_restore", "--single-transaction", "--exit-on-error", "--no-owner", "--no-acl",
    "--no-password", "-d", database }
  if opts.clean then
    table.insert(args, 2, "--clean")
    table.insert(args, 3, "--if-exists")
  end
  args.env = M.pg_env(conn, database)
  args.stdin = reader
  local ok, err = pcall(exec.run, args)
  if not ok then
    local how = "left as it was"
    if created then
      local dropped = pcall(M.drop_database, conn, database)
      how = dropped and "dropped again (it did not exist before)" or "created for the restore and could not be dropped"
    end
    error(string.format("restoring database %s failed, nothing of it was applied (one transaction); the database was %s: %s",
      database, how, tostring(err)), 0)
  end
  return { created = created }
end

--- The druid_ tables of a database (empty when the database does not exist).
function M.druid_tables(conn, database)
  database = database or conn.database
  if not M.database_exists(conn, database) then return {} end
  return M.query_lines(conn, [[select tablename from pg_tables where tablename like 'druid\_%' order by 1]], database)
end

--- Streams `pg_dump -Fc` of a database into a snapshot object.
function M.dump_into(snap, name, conn, database)
  local p = exec.spawn({ "pg_dump", "-Fc", "-Z", "1", "--no-password", env = M.pg_env(conn, database) })
  local entry = snap:put(name, M.DUMP_EXT, p:stdout())
  p:wait()
  return entry
end

--- Streams a directory as a zstd tar into a snapshot object. `increment` = {parent = manifest or nil}
--- makes it indexed (rewind.increments): only files changed since the parent's archive are stored.
function M.tar_into(snap, name, dir, opts, increment)
  opts = opts or {}
  local w = snap:writer(name, M.TAR_EXT, { indexed = increment ~= nil })
  -- tar.create consumes and commits the writer; `object` is what its close() reported.
  local topts = { from = dir, to = w, compression = opts.compression or "zstd", level = opts.level, flat = true,
    progress = { label = (opts.procedure or "druid-backup") .. " " .. name } }
  if increment then
    for k, v in pairs(increments.tar_options(snap.store, snap, name, M.TAR_EXT, increment.parent)) do topts[k] = v end
  end
  local res = tar.create(topts)
  return res.object, res
end

--- One backup snapshot (no lock: callers hold it). opts: store, prefix, conn, deep_storage, metabase_dir,
--- metabase_pg_database, compression, level, tags, params, procedure, target. Returns the manifest.
function M.backup(st, opts)
  if not fs.exists(opts.deep_storage) then
    error("druid-backup: deep storage directory " .. opts.deep_storage .. " does not exist", 0)
  end
  local parent = (opts.compression or "zstd") == "zstd"
    and increments.parent(st, opts.prefix, { full = opts.full, max_chain = opts.max_chain }) or nil
  local snap = snapshot.begin(st, { prefix = opts.prefix, procedure = opts.procedure or "druid-backup",
    target = opts.target, params = opts.params, tags = opts.tags })
  local ok, res = pcall(function()
    local t0 = time.monotonic()
    local dump
    if not opts.skip_metadata then dump = M.dump_into(snap, M.OBJECTS.metadata, opts.conn) end
    log.info("metadata dumped", { bytes = dump and dump.size, seconds = time.monotonic() - t0 })
    local t1 = time.monotonic()
    -- Deep storage is immutable segment files: indexed and incremental, a nightly copy stores only the
    -- new segments.
    local increment = (opts.compression or "zstd") == "zstd" and { parent = parent } or nil
    local shared, stats = M.tar_into(snap, M.OBJECTS.shared, opts.deep_storage, opts, increment)
    log.info("deep storage archived", { bytes = shared and shared.size, files_new = stats.files_new,
      files_unchanged = stats.files_unchanged, seconds = time.monotonic() - t1 })
    local extra = { druid = { deep_storage = opts.deep_storage, database = opts.conn.database,
      files = stats and stats.files } }
    if increment then
      for k, v in pairs(increments.manifest_fields(M.OBJECTS.shared, parent, stats)) do extra[k] = v end
    end
    if opts.metabase_dir and opts.metabase_dir ~= "" then
      M.tar_into(snap, M.OBJECTS.metabase, opts.metabase_dir, opts)
      extra.druid.metabase = "dir"
    elseif opts.metabase_pg_database and opts.metabase_pg_database ~= "" then
      M.dump_into(snap, M.OBJECTS.metabase, opts.conn, opts.metabase_pg_database)
      extra.druid.metabase = "pg"
    end
    return snap:commit(extra)
  end)
  if not ok then
    pcall(snap.abort, snap)
    error(res, 0)
  end
  return res
end

--- The directory inside an extraction that holds the backed-up tree: archives made from `dir` may name
--- entries relative to `dir` or to its parent (`shared/segments/...`); both are accepted.
function M.extracted_root(tmp, backed_dir)
  local base = tostring(backed_dir or ""):gsub("/+$", ""):match("([^/]+)$")
  local entries = fs.list(tmp)
  if base and #entries == 1 then
    local e = entries[1]
    local name = type(e) == "table" and (e.name or e.path) or e
    name = tostring(name):match("([^/]+)$")
    if name == base and fs.stat(tmp .. "/" .. name).type == "dir" then return tmp .. "/" .. name end
  end
  return tmp
end

--- Rewrites a path by the first matching `from=to` prefix of path_map (a list of {from, to}).
function M.map_path(path, path_map)
  for _, m in ipairs(path_map or {}) do
    local from, to = m[1], m[2]
    if path == from then return to end
    local f = from:sub(-1) == "/" and from or (from .. "/")
    if path:sub(1, #f) == f then
      return (to:sub(-1) == "/" and to or (to .. "/")) .. path:sub(#f + 1)
    end
  end
  return path
end

--- Parses {"/opt/shared=/new/place", ...} into {{"/opt/shared", "/new/place"}, ...}.
function M.parse_path_map(list)
  local out = {}
  for _, s in ipairs(list or {}) do
    local from, to = tostring(s):match("^(.-)=(.+)$")
    if not from or from == "" then
      error("path_map: expected FROM=TO like /opt/shared=/new/place, got " .. tostring(s), 0)
    end
    out[#out + 1] = { from, to }
  end
  return out
end

--- Checks every used segment of druid_segments: a local loadSpec whose (mapped) path exists.
--- Returns {checked, datasources = {name=true}, missing = { {datasource, interval, path, problem} }}.
function M.check_segments(conn, path_map)
  local sql = [[
select json_build_object('id', id, 'ds', dataSource, 'start', start, 'end', "end",
  'ls', case when payload is null then null
             else convert_from(payload, 'UTF8')::json -> 'loadSpec' end)
from druid_segments where used order by dataSource, start, id]]
  local rows = M.query_lines(conn, sql)
  local res = { checked = 0, datasources = {}, missing = {} }
  for _, line in ipairs(rows) do
    local r = json.decode(line)
    res.checked = res.checked + 1
    res.datasources[r.ds] = true
    local ls = r.ls
    local interval = tostring(r.start) .. "/" .. tostring(r["end"])
    local problem, path
    if type(ls) ~= "table" then
      problem = "no loadSpec in payload"
    elseif ls.type ~= "local" then
      problem = "loadSpec type " .. tostring(ls.type) .. " is not local deep storage (cannot check)"
    else
      path = M.map_path(tostring(ls.path), path_map)
      if not fs.exists(path) then problem = "file missing" end
    end
    if problem then
      res.missing[#res.missing + 1] = { datasource = r.ds, interval = interval, id = r.id, path = path,
        problem = problem }
    end
  end
  return res
end

--- Polls the coordinator's loadstatus until every datasource is at 100% or the timeout passes.
function M.wait_loaded(coordinator_url, datasources, timeout)
  local url = coordinator_url:gsub("/+$", "") .. "/druid/coordinator/v1/loadstatus"
  local deadline = time.monotonic() + timeout
  local last
  while true do
    local r = http.get(url, { check = false, timeout = "10s" })
    if r.status == 200 and type(r.json) == "table" then
      local pending = {}
      for ds in pairs(datasources) do
        local pct = tonumber(r.json[ds]) or 0
        if pct < 100 then pending[#pending + 1] = ds .. " " .. pct .. "%" end
      end
      table.sort(pending)
      if #pending == 0 then return true end
      last = table.concat(pending, ", ")
    else
      last = "coordinator answered " .. tostring(r.status)
    end
    if time.monotonic() >= deadline then
      error("druid-restore: datasources not fully loaded after " .. time.format_duration(timeout) .. ": " .. last, 0)
    end
    log.info("waiting for the coordinator", { pending = last })
    task.sleep(1)
  end
end

return M
