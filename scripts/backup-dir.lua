-- backup-dir: one or more directories → one tar.zst object per snapshot in a store, under the prefix's lock.
-- With each=true every directory is its own snapshot under its own prefix, split over copies side by side
-- (index/count or a Kubernetes Indexed Job); batch=ID makes a rerun skip what it already committed.
-- With zstd (the default) every snapshot has an index of its files: the next backup stores only the files
-- that changed and references the rest in the objects that hold them; restore-dir path= reads one part.
-- The work is in stdlib/rewind/dir_backup.lua.
local encryption = require("rewind.encryption")
local dir_backup = require("rewind.dir_backup")

return {
  description = "Back up directories to a store as a snapshot (one streaming tar + zstd object, manifest last); each=true: one snapshot per directory, split over copies",
  params = encryption.params({
    from = { type = "list", required = true, doc = "directories to back up (comma-separated)" },
    store = { type = "string", doc = "store URL (file:///path, s3://bucket/prefix, az://container/prefix); default: REWIND_STORE, the config file's store, else ~/.local/share/rewind/store" },
    prefix = { type = "string", doc = "key prefix of the snapshots (default dirs/<name of the first directory>); with each=true the parent of the per-directory prefixes (default dirs)" },
    each = { type = "boolean", default = false, doc = "every directory is its own snapshot under <prefix>/<its name>, each under its own lease (default: one snapshot of all of them)" },
    index = { type = "integer", doc = "with each=true: this copy's share of the directories when `count` copies run side by side, from 0 (default: JOB_COMPLETION_INDEX, as a Kubernetes Indexed Job sets it)" },
    count = { type = "integer", doc = "with each=true: how many copies share the directories (default: JOB_COMPLETION_COUNT); each takes a contiguous slice" },
    batch = { type = "string", doc = "this run's identity (e.g. the Job's name), recorded as tag batch=ID; a prefix whose newest snapshot already carries it is skipped as \"already done\", so a rerun redoes only what was not committed" },
    full = { type = "boolean", default = false, doc = "store every file again (a full copy) instead of only the files changed since the newest snapshot" },
    max_chain = { type = "integer", default = 30, doc = "after this many snapshots in a row that build on their parent, the next one is a full copy (restores and prunes stay quick)" },
    compression = { type = "string", default = "zstd", choices = { "zstd", "gzip", "none" }, doc = "archive compression" },
    level = { type = "integer", doc = "compression level (zstd default 1, gzip default 6)" },
    exclude = { type = "list", doc = "globs of paths to leave out, relative to each directory (e.g. *.log,cache)" },
    tags = { type = "list", doc = "key=value tags recorded in the manifest (comma-separated)" },
    lock_ttl = { type = "duration", default = "2m", doc = "lease length of the target's lock (renewed while running)" },
    dry_run = { type = "boolean", default = false, doc = "only show what would be written" },
  }),
  run = function(p, ctx)
    return dir_backup.run(p, ctx)
  end,
}
