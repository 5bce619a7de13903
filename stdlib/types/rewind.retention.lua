---@meta
-- rewind.retention: which snapshots a retention policy keeps, and why (restic `forget` semantics).

---@class RetentionPolicy
---@field keep_last? integer keep the N newest snapshots (-1: all)
---@field keep_hourly? integer newest of each of the N most recent hours with a snapshot
---@field keep_daily? integer newest of each of the N most recent days with a snapshot
---@field keep_weekly? integer newest of each of the N most recent ISO weeks with a snapshot
---@field keep_monthly? integer newest of each of the N most recent months with a snapshot
---@field keep_yearly? integer newest of each of the N most recent years with a snapshot
---@field keep_within? number|string keep everything within this duration of the group's newest snapshot (e.g. "60d")
---@field keep_tags? string[] snapshots with any of these tags are kept forever
---@field timezone? string IANA name for the period buckets (default UTC)
---@field grace? number|string incomplete snapshots younger than this are kept (default 6h)

---@class RetentionEntry
---@field manifest table the snapshot's manifest
---@field reasons string[] the rules that kept it (e.g. "keep-daily 2026-11-20"), or why it goes
---@field group string "procedure target"

---@class RetentionIncompleteEntry
---@field incomplete table `{id, keys, started_at}` from snapshot.incomplete
---@field reasons string[]

---@class RetentionPlan
---@field keep RetentionEntry[]
---@field remove RetentionEntry[]
---@field incomplete_keep RetentionIncompleteEntry[]
---@field incomplete_remove RetentionIncompleteEntry[]
---@field groups table<string, {keep: integer, remove: integer}>

local M = {}

--- Plans retention over complete manifests (and optionally incomplete snapshots).
---@param manifests table[]
---@param policy RetentionPolicy
---@param now? number epoch seconds (default: now)
---@param incomplete? table[] from snapshot.incomplete
---@return RetentionPlan
function M.plan(manifests, policy, now, incomplete) end

--- True when the policy has at least one keep rule.
---@param policy RetentionPolicy
---@return boolean
function M.has_rules(policy) end

--- The group a manifest belongs to ("procedure target").
---@param manifest table
---@return string
function M.group_key(manifest) end

--- Epoch seconds of a snapshot id "YYYYMMDD-HHMMSS", or nil.
---@param id string
---@return number|nil
function M.id_time(id) end

return M
