---@meta
-- rewind.prune: applies a retention policy to the snapshots under a prefix, manifests deleted before objects, under the prefix's lock.

---Prune-style params (the prune script's).
---@class rewind.prune.Params
---@field prefix string
---@field keep_last? integer
---@field keep_hourly? integer
---@field keep_daily? integer
---@field keep_weekly? integer
---@field keep_monthly? integer
---@field keep_yearly? integer
---@field keep_within? number|string
---@field tags? string[]               snapshots with any of these tags are kept forever
---@field timezone? string             default "UTC"
---@field grace? number|string         incomplete snapshots and leftovers younger than this are kept (default 6 h)
---@field dry_run? boolean             print the plan, delete nothing
---@field concurrency? integer         manifests read at once (default 128)
---@field delete_concurrency? integer  delete requests in flight (default 4)
---@field cache? boolean               cache manifests locally (default true)
---@field batch? integer               keys per delete request (default 1000)

---What a prune did (or would do, when dry_run).
---@class rewind.prune.Result
---@field prefix string
---@field dry_run boolean
---@field snapshots integer           valid snapshots found
---@field kept integer
---@field removed integer
---@field incomplete_kept integer
---@field incomplete_removed integer
---@field invalid integer             invalid manifests (kept, nothing they name deleted)
---@field invalid_snapshots rewind.snapshot.Invalid[]
---@field manifests_cached integer    manifests taken from the local cache
---@field list_seconds number
---@field decide_seconds number
---@field plan_seconds number
---@field delete_seconds? number      not when dry_run
---@field deleted_keys integer
---@field delete_batches integer
---@field leftovers_removed integer   temp files of killed writers (local store)
---@field leftover_bytes integer

local M = {}

---The retention policy of prune-style params (counts default to 0, grace to 6 h, timezone to UTC; tags
---become keep_tags).
---@param p rewind.prune.Params
---@return RetentionPolicy
function M.policy(p) end

---Prunes `p.prefix` of `st` by the policy in `p` while the caller holds the prefix's lock `l` (checked
---before each delete batch); prints the plan (keep / remove / incomplete / invalid lines) and returns the
---result. Deletes every removed snapshot's manifest before any object, and only keys in a snapshot's own
---directory; an invalid manifest is reported and kept.
---@param st rewind.Store
---@param l rewind.Lock
---@param p rewind.prune.Params
---@return rewind.prune.Result
function M.run(st, l, p) end

return M
