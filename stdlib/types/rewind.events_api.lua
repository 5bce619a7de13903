---@meta
-- rewind.events_api: the event dispatcher of api-notes.md ("Event dispatcher"). Every path is a template
-- with {source}, {event_type}, {label} and {sha256}, so a dispatcher with other paths needs only params.

---@class rewind.events_api.Page
---@field events table[]      events in order: {id, timestamp (ms), streams = {{sha256, label, size}}, ...}
---@field next_cursor string  where the next page starts
---@field more boolean        false with an empty list: caught up for now

---@class rewind.events_api.Client
---@field url string
local Client = {}
---One page of events after `cursor` (nil: from the start); an unknown pair (404) reads as empty when
---`missing_ok`. Raises on any other answer, naming the pair and the status.
---@param source string
---@param event_type string
---@param cursor? string
---@param limit integer  1..1000
---@param missing_ok? boolean
---@return rewind.events_api.Page
function Client.events(source, event_type, cursor, limit, missing_ok) end
---A reader over one stream's bytes (503 busy is retried).
---@return rewind.Reader
function Client.stream_reader(source, label, sha256) end
---Posts a stream's bytes with its sha256; returns 201 (created) or 200 (already there), raises otherwise.
---@param body rewind.Reader|string
---@return integer status
function Client.restore_stream(source, label, sha256, body) end
---Posts a batch of events once, never retried (a lost answer may mean it was applied). Returns the
---response whatever its status; raises only when no answer came.
---@param events table[]
---@return rewind.http.Response
function Client.restore_events(source, event_type, events) end

local M = {}

---The default path templates: events_path, stream_path, restore_stream_path, restore_events_path.
---@type table<string,string>
M.PATHS = {}

---@param p {url: string, token?: string, timeout?: number|string, events_path?: string, stream_path?: string, restore_stream_path?: string, restore_events_path?: string}
---@return rewind.events_api.Client
function M.new(p) end

return M
