---@meta
-- rewind.druid: Druid + PostgreSQL metadata + Metabase backup and restore helpers.

---@class DruidConn
---@field host? string
---@field port? integer
---@field user? string
---@field database string
---@field password? string secret: passed only through PGPASSWORD

local M = {}

--- Environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD) for the PostgreSQL client programs.
---@param conn DruidConn
---@param database? string
---@return table<string, string>
function M.pg_env(conn, database) end

--- Runs SQL through psql (stdin), ON_ERROR_STOP; returns exec.run's result.
---@param conn DruidConn
---@param sql string
---@param opts? {database?: string, check?: boolean}
---@return table
function M.psql(conn, sql, opts) end

--- The lines psql prints for a query (unaligned, tuples only).
---@param conn DruidConn
---@param sql string
---@param database? string
---@return string[]
function M.query_lines(conn, sql, database) end

---@param conn DruidConn
---@param database string
---@return boolean
function M.database_exists(conn, database) end

---@param conn DruidConn
---@param database string
function M.create_database(conn, database) end

---@param conn DruidConn
---@param database string
function M.drop_database(conn, database) end

--- Restores a `pg_dump -Fc` stream into `database` in one transaction (pg_restore --single-transaction,
--- with --clean --if-exists when opts.clean): a failure leaves the database exactly as it was (one that
--- did not exist is created for the restore and dropped again). Raises naming the database.
---@param conn DruidConn
---@param database string
---@param reader any a Reader (e.g. store:reader(key)) or a string
---@param opts? {clean?: boolean}
---@return {created: boolean}
function M.restore_dump(conn, database, reader, opts) end

--- The druid_ tables of a database (empty when it does not exist).
---@param conn DruidConn
---@param database? string
---@return string[]
function M.druid_tables(conn, database) end

--- Streams `pg_dump -Fc` of a database into a snapshot object; returns the object entry.
---@param snap table
---@param name string
---@param conn DruidConn
---@param database? string
---@return table
function M.dump_into(snap, name, conn, database) end

--- Streams a directory as a compressed tar into a snapshot object; returns the entry and tar stats.
---@param snap table
---@param name string
---@param dir string
---@param opts? {compression?: string, level?: integer}
---@return table, table
function M.tar_into(snap, name, dir, opts) end

--- One backup snapshot (metadata dump, deep storage tar, optional Metabase); callers hold the lock.
---@param st table store
---@param opts table prefix, target, conn, deep_storage, metabase_dir, metabase_pg_database, tags, params
---@return table manifest
function M.backup(st, opts) end

--- The directory inside an extraction that holds the backed-up tree.
---@param tmp string
---@param backed_dir? string
---@return string
function M.extracted_root(tmp, backed_dir) end

--- Rewrites a path by the first matching prefix of path_map.
---@param path string
---@param path_map {[1]: string, [2]: string}[]
---@return string
function M.map_path(path, path_map) end

--- Parses {"FROM=TO", ...}.
---@param list string[]
---@return {[1]: string, [2]: string}[]
function M.parse_path_map(list) end

--- Checks every used druid_segments row has a local loadSpec file.
---@param conn DruidConn
---@param path_map? table
---@return {checked: integer, datasources: table<string, boolean>, missing: {datasource: string, interval: string, id: string, path?: string, problem: string}[]}
function M.check_segments(conn, path_map) end

--- Polls GET /druid/coordinator/v1/loadstatus until every datasource is at 100%, or raises after timeout.
---@param coordinator_url string
---@param datasources table<string, boolean>
---@param timeout number seconds
---@return boolean
function M.wait_loaded(coordinator_url, datasources, timeout) end

return M
