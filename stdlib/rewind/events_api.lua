-- rewind.events_api: the event dispatcher as api-notes.md describes it ("Event dispatcher"). Every path is
-- a template ({source}, {event_type}, {label}, {sha256}), so a dispatcher with other paths needs only params.
local http = require("rewind.http")

local M = {}

M.PATHS = {
  events_path = "/api/v1/events/{source}/{event_type}",
  stream_path = "/api/v1/streams/{source}/{label}/{sha256}",
  restore_stream_path = "/api/v1/restore/streams/{source}/{label}",
  restore_events_path = "/api/v1/restore/events/{source}/{event_type}",
}

local function escape(v)
  return (tostring(v):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local function fill(template, vars)
  return (template:gsub("{([%w_]+)}", function(name)
    local v = vars[name]
    if v == nil then
      error("path template " .. template .. ": unknown placeholder {" .. name .. "}", 0)
    end
    return escape(v)
  end))
end

---@param p table params: url, token?, timeout?, and the *_path templates
function M.new(p)
  local base = p.url:gsub("/+$", "")
  local headers = {}
  if p.token then
    headers["Authorization"] = "Bearer " .. p.token
  end
  local api = { url = base, timeout = p.timeout or "60s" }
  local paths = {}
  for k, default in pairs(M.PATHS) do
    paths[k] = p[k] or default
  end

  local function url(path_key, vars)
    return base .. fill(paths[path_key], vars)
  end

  ---One page of events after `cursor` (nil: from the start): {events, next_cursor, more}. A pair the
  ---dispatcher does not know (404) reads as empty when `missing_ok`.
  function api.events(source, event_type, cursor, limit, missing_ok)
    local r = http.get(url("events_path", { source = source, event_type = event_type }), {
      headers = headers, timeout = api.timeout, check = false,
      query = { cursor = cursor, limit = limit },
    })
    if r.status == 404 and missing_ok then
      return { events = {}, more = false, next_cursor = cursor }
    end
    if r.status ~= 200 or type(r.json) ~= "table" or type(r.json.events) ~= "table" then
      error(string.format("events of %s/%s: HTTP %d %s", source, event_type, r.status, (r.body or ""):sub(1, 300)), 0)
    end
    return r.json
  end

  ---A reader over one stream's bytes (503 busy is retried by http).
  function api.stream_reader(source, label, sha256)
    local r = http.get(url("stream_path", { source = source, label = label, sha256 = sha256 }), {
      headers = headers, timeout = api.timeout, stream = true,
    })
    return r.reader
  end

  ---Posts one stream's bytes; returns the status (201 created, 200 already there). Raises on others.
  function api.restore_stream(source, label, sha256, body)
    local h = { ["X-Sha256"] = sha256, ["Content-Type"] = "application/octet-stream" }
    for k, v in pairs(headers) do
      h[k] = v
    end
    local r = http.post(url("restore_stream_path", { source = source, label = label }), {
      headers = h, body = body, timeout = api.timeout, check = false,
    })
    if r.status ~= 200 and r.status ~= 201 then
      error(string.format("restoring stream %s/%s/%s: HTTP %d %s", source, label, sha256, r.status,
        (r.body or ""):sub(1, 300)), 0)
    end
    return r.status
  end

  ---Posts a batch of events once (never retried here: a lost answer may mean it was applied).
  ---Returns the response; raises only when no answer came.
  function api.restore_events(source, event_type, events)
    return http.post(url("restore_events_path", { source = source, event_type = event_type }), {
      headers = headers, json = events, timeout = api.timeout, check = false, retries = 0,
    })
  end

  return api
end

return M
