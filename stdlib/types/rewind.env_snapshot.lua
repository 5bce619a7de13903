---@meta
-- rewind.env_snapshot: one snapshot of a whole environment (its parts in order, manifest last), and its restore with checks.

---What the manifest records of an environment (its `env` field).
---@class rewind.env_snapshot.Record
---@field parts string[]  the parts backed up, in order
---@field config? rewind.env_deploy.ConfigRecord
---@field deployment? rewind.env_deploy.DeploymentRecord
---@field mysql? {databases: rewind.env_mysql.Record[]}
---@field elasticsearch? rewind.env_es.Record
---@field firebase? rewind.env_firebase.Record

---The manifest of an env-backup snapshot.
---@class rewind.env_snapshot.Manifest: rewind.snapshot.Manifest
---@field env rewind.env_snapshot.Record

---One part to restore: its record in the manifest and where it goes.
---@class rewind.env_snapshot.Selected
---@field name string  a part name (see env_params.PARTS)
---@field record any   the part's record in the manifest
---@field target any   the part's configuration (rewind.env_mysql.Part, rewind.env_es.Part, ...)

---@class rewind.env_snapshot.TakeOpts
---@field prefix string
---@field target? string
---@field tags? string[]
---@field params? table      recorded in the manifest, without secrets
---@field level? integer     zstd level of dumps and tars
---@field workers? integer   zstd worker threads for dumps
---@field procedure? string  recorded in the manifest (default "env-backup")

---@class rewind.env_snapshot.RestoreOpts
---@field checkout? boolean        move the git checkout to the recorded commit
---@field force? boolean           check out over uncommitted changes
---@field deploy_command? string   run with the recorded images (else they are printed)
---@field safety? string           id of the safety snapshot, named when a part fails

local M = {}

---Takes one snapshot of the given parts, in order, and commits it with the record as `env`. Callers hold
---the prefix's lease. A failing part aborts the snapshot (no manifest) and the error names the part.
---@param st rewind.Store
---@param parts rewind.env_params.Parts
---@param opts rewind.env_snapshot.TakeOpts
---@return rewind.env_snapshot.Manifest
function M.take(st, parts, opts) end

---Id of the newest complete env-backup snapshot that is not a safety snapshot (tag safety); a usage error
---when there is none.
---@param st rewind.Store
---@param prefix string
---@return string
function M.newest(st, prefix) end

---Which parts to restore and where, in order: from the manifest, the configured parts and the `only` list
---(default: every part in the snapshot). An unknown part, one the snapshot does not hold, or one the
---params do not say where to restore (elasticsearch, firebase) is a usage error.
---@param m rewind.env_snapshot.Manifest
---@param parts rewind.env_params.Parts
---@param only? string[]
---@return rewind.env_snapshot.Selected[]
function M.select(m, parts, only) end

---The parts a safety snapshot must hold before `selected` are destroyed: what exists now (the recorded
---databases that exist, the config directory if it exists, the recorded indices, ...).
---@param selected rewind.env_snapshot.Selected[]
---@return rewind.env_params.Parts
function M.safety_parts(selected) end

---Plan lines: what each selected part destroys and what it becomes.
---@param m rewind.env_snapshot.Manifest
---@param selected rewind.env_snapshot.Selected[]
---@param opts rewind.env_snapshot.RestoreOpts
---@return string[]
function M.plan(m, selected, opts) end

---Restores the selected parts in order, checking each against the manifest. Returns the names restored;
---on failure raises naming the failing part, the parts restored before it, the ones left untouched and the
---safety snapshot (opts.safety).
---@param snap rewind.snapshot.Opened
---@param selected rewind.env_snapshot.Selected[]
---@param opts rewind.env_snapshot.RestoreOpts
---@return string[]
function M.restore(snap, selected, opts) end

return M
