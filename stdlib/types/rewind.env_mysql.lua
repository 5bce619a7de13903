---@meta
-- rewind.env_mysql: MySQL / MariaDB databases as streamed dumps (one mariadb-dump or mysqldump per database, through zstd into the store).

---A MySQL/MariaDB part: the connection and the databases. The password reaches the clients only in their
---environment (MYSQL_PWD), never in argv or logs.
---@class rewind.env_mysql.Part
---@field databases? string[]      databases to dump, one object each (env_params.parts always sets it)
---@field host? string              server host (default: the client's, usually the local socket)
---@field port? integer
---@field socket? string            server unix socket
---@field user? string
---@field password? string          secret: passed only through MYSQL_PWD
---@field defaults_file? string     client option file (--defaults-extra-file), e.g. with the credentials
---@field dump_command? string      dump program (default: mariadb-dump, else mysqldump)
---@field client_command? string    client program (default: mariadb, else mysql)
---@field absent? string[]          (safety snapshots) databases that did not exist: restoring drops them
---@field count_rows? boolean       record exact row counts (default true)

---The manifest record of one dumped database.
---@class rewind.env_mysql.Record
---@field name string                    the database
---@field object string                  snapshot object name, `mysql-<database>`
---@field size integer                   bytes stored (compressed)
---@field sha256 string
---@field charset string                 default character set of the database
---@field collation string               default collation of the database
---@field tables? table<string, integer>  exact row count of every base table (absent with count_rows=false)
---@field counts_exact boolean           taken under maintenance; else a restore only warns about a difference

local M = {}

---Extension of the dump objects.
---@type string
M.EXT = "sql.zst"

---A quoted identifier: `name` with backticks doubled.
---@param s any
---@return string
function M.quote_ident(s) end

---Runs SQL with the client program (batch, raw, no column names, utf8mb4); returns the lines it prints
---(tab-separated fields). Raises when the client fails.
---@param conn rewind.env_mysql.Part
---@param sql string
---@param database? string
---@return string[]
function M.query(conn, sql, database) end

---Whether a database exists on the server.
---@param conn rewind.env_mysql.Part
---@param database string
---@return boolean
function M.exists(conn, database) end

---The default character set and collation of a database; raises when it does not exist.
---@param conn rewind.env_mysql.Part
---@param database string
---@return {charset: string, collation: string}
function M.charset(conn, database) end

---Exact row counts of every base table of a database: {table = rows}.
---@param conn rewind.env_mysql.Part
---@param database string
---@return table<string, integer>
function M.row_counts(conn, database) end

---Streams one database's dump (--single-transaction, routines, events, triggers) through zstd into the
---snapshot object `mysql-<database>`, then counts its rows; returns the manifest record.
---@param snap rewind.snapshot.Snap
---@param conn rewind.env_mysql.Part
---@param database string
---@param opts? {level?: integer, workers?: integer}
---@return rewind.env_mysql.Record
function M.backup(snap, conn, database, opts) end

---Drops and recreates the recorded database (with its charset and collation), then loads the dump from
---`reader` (a verified snapshot reader, zstd).
---@param conn rewind.env_mysql.Part
---@param record rewind.env_mysql.Record
---@param reader rewind.Reader
function M.restore(conn, record, reader) end

---Compares the row counts now with the recorded ones; nil when they match, else a description of the
---differences.
---@param conn rewind.env_mysql.Part
---@param record rewind.env_mysql.Record
---@return string?
function M.check(conn, record) end

--- Drops a database when it exists.
---@param conn rewind.env_mysql.Part
---@param database string
function M.drop(conn, database) end

return M
