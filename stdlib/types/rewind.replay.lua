---@meta
-- rewind.replay: one day of a replay as resumable steps, state in `<state_prefix>/days/<day>.json`:
-- backing_up -> backed_up -> removed -> committing -> replayed -> done, or restoring -> failed.
local M = {}

---@class replay.Ctx
---@field store rewind.Store
---@field entry replay.Entry
---@field topic string
---@field state_prefix string
---@field archive {prefix: string, topic?: string, template: string}
---@field dependent_template string
---@field druid? table            a rewind.druid_api client
---@field producer kafka.Producer
---@field transactional boolean
---@field txn_timeout number
---@field kill_timeout number
---@field concurrency integer
---@field delete_backups boolean
---@field file_path? string
---@field resolve? "committed"|"replay"
---@field send table              send_lines options (topic, format, key_field, partition, max_errors)

---@class replay.DayState
---@field day string
---@field step string
---@field metrics table   events, bytes, malformed, files, deleted, segments, killed, transaction, seconds
---@field error? string
---@field resumed? string the step an earlier run stopped at, or "already done"

---@param ctx replay.Ctx
---@param day string
---@return string
function M.state_key(ctx, day) end

---Where the day's dependent copies go: every copied key keeps its name under this root.
---@param ctx replay.Ctx
---@param day string
---@return string
function M.backup_root(ctx, day) end

---@param ctx replay.Ctx
---@param day string
---@return replay.DayState|nil
function M.load_state(ctx, day) end

---@param ctx replay.Ctx
---@param st replay.DayState
function M.save_state(ctx, st) end

---The day's archived objects, sorted (or only ctx.file_path), and the prefix they were listed under.
---@param ctx replay.Ctx
---@param day? string
---@return {key: string, size: integer}[], string
function M.archived(ctx, day) end

---@param ctx replay.Ctx
---@param dep {prefix: string, layout?: string}
---@param day string
---@return string
function M.dependent_prefix(ctx, dep, day) end

---What a day would copy, delete, replay and kill (dry_run).
---@param ctx replay.Ctx
---@param day string
---@return table
function M.plan(ctx, day) end

---Sends files into the topic (one transaction when transactional), counting into `m`; aborts and raises on failure.
---@param ctx replay.Ctx
---@param files {key: string}[]
---@param m table
---@param label string
---@param before_commit? fun()
function M.send_files(ctx, files, m, label, before_commit) end

---Differences between the day's dependents now and as recorded (missing, changed, extra keys; segments).
---@param ctx replay.Ctx
---@param st replay.DayState
---@return string[]
function M.differences(ctx, st) end

---Runs or resumes one day; returns its state (done, failed after a checked restore, or skipped).
---@param ctx replay.Ctx
---@param day string
---@return replay.DayState
function M.run_day(ctx, day) end

---"1.5 MB" (decimal units).
---@param n integer
---@return string
function M.human_bytes(n) end

---The Slack message of a finished day (done, or failed with its error and the metrics so far).
---@param source string
---@param topic string
---@param st replay.DayState
---@return string
function M.message(source, topic, st) end

---One line of a dry run's plan.
---@param plan table
---@param topic string
---@return string
function M.plan_line(plan, topic) end

return M
