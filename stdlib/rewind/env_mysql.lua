-- rewind.env_mysql: MySQL / MariaDB databases as streamed dumps. One `mariadb-dump` (or mysqldump)
-- per database, --single-transaction with routines, events and triggers, piped through zstd into the
-- store: no staging file. The password reaches the clients only in their environment (MYSQL_PWD) or
-- through an option file, never in argv or logs. Exact row counts per table go into the manifest and
-- are checked after a restore.
local codec = require("rewind.codec")
local exec = require("rewind.exec")
local log = require("rewind.log")
local task = require("rewind.task")

local M = {}

M.EXT = "sql.zst"

local function program(given, choices)
  if given and given ~= "" then return given end
  for _, c in ipairs(choices) do
    if exec.which(c) then return c end
  end
  error("none of " .. table.concat(choices, ", ") .. " is installed (install mariadb-client or give the program)", 0)
end

--- argv prefix and environment for a client program of `conn`.
local function client(conn, prog)
  local args = { prog }
  -- An option file must come first on the command line.
  if conn.defaults_file then args[#args + 1] = "--defaults-extra-file=" .. conn.defaults_file end
  if conn.host then args[#args + 1] = "--host=" .. conn.host end
  if conn.port then args[#args + 1] = "--port=" .. tostring(conn.port) end
  if conn.socket then args[#args + 1] = "--socket=" .. conn.socket end
  if conn.user then args[#args + 1] = "--user=" .. conn.user end
  local env = {}
  if conn.password and conn.password ~= "" then env.MYSQL_PWD = conn.password end
  return args, env
end

local function quote_ident(s)
  return "`" .. tostring(s):gsub("`", "``") .. "`"
end
M.quote_ident = quote_ident

local function quote_literal(s)
  return "'" .. tostring(s):gsub("\\", "\\\\"):gsub("'", "''") .. "'"
end

--- Runs SQL with the client; returns stdout lines (tab-separated fields, raw).
function M.query(conn, sql, database)
  local args, env = client(conn, program(conn.client_command, { "mariadb", "mysql" }))
  for _, a in ipairs({ "--batch", "--raw", "--skip-column-names", "--default-character-set=utf8mb4" }) do
    args[#args + 1] = a
  end
  if database then args[#args + 1] = "--database=" .. database end
  args.env, args.stdin, args.timeout = env, sql, "10m"
  local r = exec.run(args)
  local out = {}
  for line in r.stdout:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

--- Whether a database exists.
function M.exists(conn, database)
  return #M.query(conn, "select 1 from information_schema.schemata where schema_name = " .. quote_literal(database)) > 0
end

--- Drops a database when it exists.
function M.drop(conn, database)
  M.query(conn, "drop database if exists " .. quote_ident(database))
end

--- {charset, collation} of a database.
function M.charset(conn, database)
  local rows = M.query(conn, "select default_character_set_name, default_collation_name from information_schema.schemata where schema_name = "
    .. quote_literal(database))
  if #rows == 0 then error("database " .. database .. " does not exist on the server", 0) end
  local cs, coll = rows[1]:match("^([^\t]*)\t([^\t]*)$")
  return { charset = cs, collation = coll }
end

--- Exact row counts of every base table: {table = rows}.
function M.row_counts(conn, database)
  local tables = M.query(conn, "select table_name from information_schema.tables where table_schema = "
    .. quote_literal(database) .. " and table_type = 'BASE TABLE' order by table_name")
  local counts = {}
  if #tables == 0 then return counts end
  local parts = {}
  for _, t in ipairs(tables) do
    parts[#parts + 1] = "select " .. quote_literal(t) .. ", count(*) from " .. quote_ident(database) .. "." .. quote_ident(t)
  end
  for _, line in ipairs(M.query(conn, table.concat(parts, " union all "))) do
    local t, n = line:match("^(.*)\t(%d+)$")
    counts[t] = tonumber(n)
  end
  return counts
end

--- Streams one database's dump into the snapshot (object `mysql-<db>`); returns the manifest record.
function M.backup(snap, conn, database, opts)
  opts = opts or {}
  local info = M.charset(conn, database)
  local args, env = client(conn, program(conn.dump_command, { "mariadb-dump", "mysqldump" }))
  for _, a in ipairs({ "--single-transaction", "--routines", "--events", "--triggers", "--hex-blob",
    "--default-character-set=utf8mb4", "--quick", "--skip-dump-date", database }) do
    args[#args + 1] = a
  end
  args.env = env
  local p = exec.spawn(args)
  -- The exact row counts are taken while the dump streams: the environment is under maintenance, and
  -- the count then costs no time of its own.
  local counting = conn.count_rows ~= false and task.spawn(M.row_counts, conn, database) or nil
  local ok, entry = pcall(snap.put, snap, "mysql-" .. database, M.EXT,
    codec.compress(p:stdout(), { level = opts.level or 1, workers = opts.workers or 0 }))
  if not ok then
    if counting then counting:abort() end
    pcall(p.kill, p)
    error(entry, 0)
  end
  p:wait()
  local counts = counting and counting:join() or nil
  log.info("database dumped", { database = database, bytes = entry.size })
  -- Without maintenance, writes between the dump's snapshot and the count can make them differ: such
  -- counts are recorded as approximate, and a restore only warns about a difference.
  return { name = database, object = entry.name, size = entry.size, sha256 = entry.sha256,
    charset = info.charset, collation = info.collation, tables = counts, counts_exact = opts.quiesced == true }
end

--- Drops and recreates `database`, then loads the dump from `reader` (a verified snapshot reader).
function M.restore(conn, record, reader)
  local db = record.name
  local create = "create database " .. quote_ident(db)
  if record.charset and record.charset ~= "" then create = create .. " character set " .. record.charset end
  if record.collation and record.collation ~= "" then create = create .. " collate " .. record.collation end
  M.query(conn, "drop database if exists " .. quote_ident(db) .. "; " .. create)
  local args, env = client(conn, program(conn.client_command, { "mariadb", "mysql" }))
  args[#args + 1] = "--default-character-set=utf8mb4"
  args[#args + 1] = "--binary-mode"
  args[#args + 1] = "--database=" .. db
  args.env, args.stdin = env, codec.decompress(reader, { codec = "zstd" })
  exec.run(args)
end

--- Compares the row counts now with the recorded ones; returns nil or a description of the differences.
function M.check(conn, record)
  if record.tables == nil then return nil end -- backed up with mysql.count_rows=false
  local now = M.row_counts(conn, record.name)
  local diffs = {}
  for t, n in pairs(record.tables or {}) do
    if now[t] ~= n then diffs[#diffs + 1] = string.format("%s: %s rows, expected %d", t, tostring(now[t] or "no table,"), n) end
  end
  for t in pairs(now) do
    if not (record.tables or {})[t] then diffs[#diffs + 1] = t .. ": not in the backup" end
  end
  if #diffs == 0 then return nil end
  table.sort(diffs)
  local msg = "database " .. record.name .. " differs from the backup: " .. table.concat(diffs, "; ")
  if record.counts_exact == false then
    log.warn("row counts differ from the ones recorded; they were taken without maintenance, so writes during the backup can explain it",
      { database = record.name, differences = msg })
    return nil
  end
  return msg
end

return M
