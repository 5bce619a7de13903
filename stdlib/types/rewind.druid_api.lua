---@meta
-- rewind.druid_api: a client for the Druid coordinator and overlord HTTP APIs (mark segments used/unused,
-- list used segments, kill tasks) and Druid interval helpers. Requests go to the first endpoint that
-- answers; connection errors, timeouts, 429/500/502/504 move on and are retried in rounds with doubling
-- backoff; a 503 from an overlord (not the leader) moves to the next one. Errors name the operation, the
-- datasource, the URL, the HTTP status and Druid's error text.
--
-- used_segments lists segments OVERLAPPING an interval (Druid's metadata API); mark_unused/mark_used with
-- an interval, and kill, act on the segments CONTAINED in it (used_segments{within=true} gives that set).

---@class rewind.druid_api.Segment
---@field id string          Druid's segment id ("identifier")
---@field datasource string
---@field interval string    "START/END"
---@field version string
---@field payload table      Druid's whole segment JSON (loadSpec, shardSpec, dimensions, metrics, size...)

---@class rewind.druid_api.CallInfo
---@field attempts integer   requests sent
---@field uncertain boolean  an earlier attempt may have been applied (answer lost, or a 5xx): a count is a lower bound
---@field endpoint? string   the base URL that answered

---@class rewind.druid_api.Options
---@field coordinator string            e.g. "http://coordinator:8081"
---@field overlord? string|string[]     tried in order; kill uses the coordinator's address when none is given
---@field timeout? string|number        per request; default "30s"
---@field retries? integer              rounds over the endpoints after the first; default 3
---@field backoff? number               seconds before the first retry round, doubled each round; default 1

---@class rewind.druid_api.Client
local Client = {}

--- Marks segments unused (no longer served; files stay until a kill): {interval = "START/END"} (the
--- segments contained in it) or {segment_ids = {...}} (an empty list sends nothing and returns 0).
--- Overlord path first (newer Druid), then the coordinator's; a 404 from an overlord (older Druid) is
--- remembered and later marks go straight to the coordinator. Idempotent, hence retried safely.
---@param ds string
---@param what {interval?: string, segment_ids?: string[]}
---@return integer changed numChangedSegments
---@return rewind.druid_api.CallInfo
function Client:mark_unused(ds, what) end

--- Marks segments used again (Druid leaves overshadowed ones unused); as mark_unused.
---@param ds string
---@param what {interval?: string, segment_ids?: string[]}
---@return integer changed
---@return rewind.druid_api.CallInfo
function Client:mark_used(ds, what) end

--- The used segments of `ds` overlapping the interval(s), sorted by start then id (metadata API, ?full).
---@param ds string
---@param interval string|string[]
---@param opts? {within?: boolean} within: only segments contained in an interval
---@return rewind.druid_api.Segment[]
function Client:used_segments(ds, interval, opts) end

--- Sorted ids of the served segments of `ds` contained in the interval (GET .../intervals/{start_end}).
---@param ds string
---@param interval string
---@return string[]
function Client:served_segment_ids(ds, interval) end

--- The coordinator's loadstatus: {[datasource] = percent loaded}, 100.0 meaning fully available.
---@return table<string, number>
function Client:loadstatus() end

--- Submits a kill task (with its own id, so a resubmission after a lost answer is recognised) and polls
--- its status until SUCCESS: the UNUSED segments of `ds` contained in `interval` are deleted for good
--- (metadata and deep storage); used ones are never touched. Raises naming the task id and the datasource
--- when the task FAILED or is still running at the timeout.
---@param ds string
---@param interval string
---@param opts? {timeout?: string|number, poll?: string|number, batch_size?: integer} defaults "30m", 2 s, 100
---@return {task: string, status: table}
function Client:kill(ds, interval, opts) end

local M = {}

---@param opts rewind.druid_api.Options
---@return rewind.druid_api.Client
function M.client(opts) end

--- The interval of one UTC day: "2019-12-01" → "2019-12-01T00:00:00.000Z/2019-12-02T00:00:00.000Z".
--- Raises on anything but a valid YYYY-MM-DD.
---@param day string
---@return string
function M.day_interval(day) end

--- From the first day's start to the end of the last day (both included).
---@param first string
---@param last string
---@return string
function M.days_interval(first, last) end

--- A time (epoch seconds) in Druid's form "2019-12-01T00:00:00.000Z".
---@param t number
---@return string
function M.iso(t) end

--- Start and end (epoch seconds) of "START/END"; raises on a malformed or reversed interval.
---@param interval string
---@return number start
---@return number end_
function M.parse_interval(interval) end

--- Whether interval `inner` lies within `outer`.
---@param outer string
---@param inner string
---@return boolean
function M.contains(outer, inner) end

return M
