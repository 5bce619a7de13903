---@meta
-- rewind.td_restore: plan and run the restore of a TD parent segment, its folders and segments.
local M = {}

---Deep copy keeping JSON array markers.
function M.deep_copy(v) end
---Parent folder id of an entity or nil.
function M.parent_of(entity) end
---The parent segment body to create under a new name (server fields dropped).
---@return table
function M.clean_parent_segment(ps, new_name) end
---Ids an entity references (rule References at any depth, predictive segmentId).
---@return string[]
function M.references(attrs) end
---Copy of attrs with references rewritten through map (old → new); raises on a missing id.
---@return table attrs, table changes
function M.rewrite(attrs, map, on_missing) end
---Attributes to send on create, for the new parent segment id.
function M.clean_attributes(attrs, audience_id) end
---Plans a restore: folder levels, entity levels in dependency order, skipped entities.
---@param opts? {only?: string[]}
function M.plan(backup, opts) end
---The plan as readable lines in creation order.
---@return string[]
function M.describe(plan, map) end
---Creates folders and entities under a new root (resumable through opts.state / opts.save).
function M.restore_entities(opts) end
---The whole restore: parent segment, run, root folder, folders, segments.
function M.restore(opts) end

return M
