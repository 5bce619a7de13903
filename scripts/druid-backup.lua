-- druid-backup: one snapshot of a Druid stack (source document 001), taken while it runs:
-- 1) the metadata database (pg_dump -Fc streamed into the store), 2) the deep-storage directory as a
-- streamed tar.zst, 3) optionally Metabase (its data directory as a tar, or its PostgreSQL database).
-- Object names keep the source's names: druid_metadata_dump, druid_shared, metabase_data.
local store = require("rewind.store")
local lock = require("rewind.lock")
local druid = require("rewind.druid")
local env = require("rewind.env")

local function pg_params(t)
  t.pg_host = { type = "string", env = "PGHOST", doc = "metadata PostgreSQL host or socket directory (PGHOST)" }
  t.pg_port = { type = "integer", env = "PGPORT", default = 5432, doc = "metadata PostgreSQL port (PGPORT)" }
  t.pg_user = { type = "string", env = "PGUSER", doc = "metadata PostgreSQL user (PGUSER)" }
  t.pg_database = { type = "string", env = "PGDATABASE", default = "druid", doc = "Druid metadata database (PGDATABASE)" }
  t.pg_password = { type = "string", secret = true, env = "PGPASSWORD", doc = "password (secret; PGPASSWORD)" }
  return t
end

return {
  description = "Back up Druid: metadata DB dump, deep-storage segments and optionally Metabase, as one snapshot",
  pg_params = pg_params,
  params = pg_params({
    deep_storage = { type = "string", default = "/opt/shared", doc = "Druid deep-storage directory (druid_shared volume)" },
    metabase_dir = { type = "string", doc = "Metabase data directory to archive (optional)" },
    metabase_pg_database = { type = "string", doc = "Metabase PostgreSQL database to dump, same server (optional)" },
    store = { type = "string", doc = "store URL (default: REWIND_STORE, the config file's store, else the local store)" },
    prefix = { type = "string", default = "druid", doc = "snapshot prefix in the store" },
    target = { type = "string", default = "druid", doc = "name of the backed-up stack (groups snapshots for retention)" },
    compression = { type = "string", default = "zstd", choices = { "zstd", "gzip", "none" }, doc = "compression of the tars" },
    level = { type = "integer", default = 1, doc = "compression level of the tars" },
    full = { type = "boolean", default = false, doc = "store every deep-storage file again instead of only those added or changed since the newest snapshot" },
    max_chain = { type = "integer", default = 30, doc = "after this many snapshots in a row that build on their parent, the next one is a full copy" },
    tags = { type = "list", doc = "tags recorded in the manifest (e.g. nightly)" },
    dry_run = { type = "boolean", default = false, doc = "print what would be backed up, write nothing" },
    lock_ttl = { type = "duration", default = "2m", doc = "lease length of the prefix's lock (renewed while running; a lost lease stops the job)" },
  }),
  run = function(p, ctx)
    if p.metabase_dir and p.metabase_pg_database then
      require("rewind.errors").usage("give metabase_dir or metabase_pg_database, not both")
    end
    local conn = { host = p.pg_host, port = p.pg_port, user = p.pg_user, database = p.pg_database,
      password = p.pg_password }
    if conn.password then env.mark_secret(conn.password) end
    if p.dry_run then
      local plan = {
        "1. pg_dump -Fc of database " .. conn.database .. " → druid_metadata_dump." .. druid.DUMP_EXT,
        "2. tar (" .. p.compression .. ") of " .. p.deep_storage .. " → druid_shared." .. druid.TAR_EXT,
      }
      if p.metabase_dir then plan[#plan + 1] = "3. tar of " .. p.metabase_dir .. " → metabase_data." .. druid.TAR_EXT end
      if p.metabase_pg_database then plan[#plan + 1] = "3. pg_dump of " .. p.metabase_pg_database .. " → metabase_data." .. druid.DUMP_EXT end
      for _, l in ipairs(plan) do print(l) end
      return { dry_run = true, plan = plan }
    end
    local st = store.open(p.store)
    return lock.with_target(st, p.prefix, function()
      local m = druid.backup(st, {
        prefix = p.prefix, target = p.target, conn = conn, deep_storage = p.deep_storage,
        metabase_dir = p.metabase_dir, metabase_pg_database = p.metabase_pg_database,
        compression = p.compression, level = p.level, tags = p.tags or {}, params = ctx.public_params,
        full = p.full, max_chain = p.max_chain,
      })
      local objects = {}
      for _, o in ipairs(m.objects or {}) do objects[#objects + 1] = { name = o.name, key = o.key, size = o.size } end
      return { snapshot = m.id, prefix = p.prefix, objects = objects, parent = m.parent, chain = m.chain,
        files_new = m.files_new, files_unchanged = m.files_unchanged, bytes_new = m.bytes_new,
        bytes_unchanged = m.bytes_unchanged }
    end, { ttl = p.lock_ttl, owner = "druid-backup" })
  end,
}
