-- rewind.event_restore: event-restore (source document 004). Streams first, for every selected source, so
-- that the events restored afterwards find their streams; then the events of each (source, event type)
-- concurrently, day by day in order, batch by batch in time order.
--
-- Checkpoints live in a local directory, one file per source (streams) and per pair (events), so a
-- restart resumes after the last restored key. A batch of events is marked "posting" before it is sent;
-- when its answer is lost (a dropped connection, a 5xx, a kill), the batch is in doubt and the dispatcher's
-- own events are read to see whether it arrived, so it is never applied twice.
local store_mod = require("rewind.store")
local task = require("rewind.task")
local json = require("rewind.json")
local codec = require("rewind.codec")
local log = require("rewind.log")
local fs = require("rewind.fs")
local time = require("rewind.time")
local layout = require("rewind.events_layout")
local events_api = require("rewind.events_api")
local caches = require("rewind.event_caches")
local errors = require("rewind.errors")

local M = {}

local function checkpoint(dir, name)
  local path = dir .. "/" .. name:gsub("[^%w%-_.]", "_") .. ".json"
  local state = fs.exists(path) and json.decode(fs.read(path)) or {}
  return state, function()
    fs.write(path, json.encode(state))
  end
end

local function selected(list, value)
  if not list or #list == 0 then
    return true
  end
  for _, v in ipairs(list) do
    if v == value then
      return true
    end
  end
  return false
end

---What the store holds for the selection: streams per source, batches per pair (each sorted by key,
---which is day order, then time order within a day).
local function inventory(store, p)
  local inv = { streams = {}, pairs = {} }
  for obj in store:list(layout.join(p.prefix, "streams") .. "/") do
    local s = layout.parse_stream_key(p.prefix, obj.key)
    if s and selected(p.sources, s.source) then
      inv.streams[s.source] = inv.streams[s.source] or {}
      table.insert(inv.streams[s.source], { key = obj.key, size = obj.size, label = s.label, sha256 = s.sha256 })
    end
  end
  for obj in store:list(layout.join(p.prefix, "events") .. "/") do
    local b = layout.parse_batch_key(p.prefix, obj.key)
    if b and selected(p.sources, b.source) and selected(p.event_types, b.event_type)
      and (not p.from or b.day >= p.from) and (not p.to or b.day <= p.to) then
      local name = b.source .. "/" .. b.event_type
      inv.pairs[name] = inv.pairs[name] or { source = b.source, event_type = b.event_type, batches = {} }
      table.insert(inv.pairs[name].batches, { key = obj.key, size = obj.size, day = b.day })
    end
  end
  for _, list in pairs(inv.streams) do
    table.sort(list, function(a, b) return a.key < b.key end)
  end
  for _, pr in pairs(inv.pairs) do
    table.sort(pr.batches, function(a, b) return a.key < b.key end)
  end
  return inv
end

local function read_batch(store, key)
  local ok, res = pcall(function()
    local text = codec.decompress(store:reader(key), { codec = "gzip" }):read_all()
    local events = json.array()
    for line in text:gmatch("[^\n]+") do
      events[#events + 1] = json.decode(line)
    end
    return events
  end)
  if not ok then
    error(string.format("batch %s is not gzip JSON lines: %s", key, errors.message(res)), 0)
  end
  return res
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do
    out[#out + 1] = k
  end
  table.sort(out)
  return out
end

local function restorer(p, store, api, dir)
  local self = { stats = { streams = 0, streams_created = 0, events = 0, batches = 0, in_doubt = 0,
    in_doubt_found = 0, missing_restored = 0 } }

  ---Posts one stored stream (decompressed, with its sha256); retried with a fresh reader, since a body
  ---that was streamed cannot be sent again. 200 (already there) counts as done.
  function self.post_stream(s)
    local last
    for attempt = 1, p.retries + 1 do
      local ok, status = pcall(api.restore_stream, s.source, s.label, s.sha256,
        codec.decompress(store:reader(s.key), { codec = "gzip" }))
      if ok then
        self.stats.streams = self.stats.streams + 1
        if status == 201 then
          self.stats.streams_created = self.stats.streams_created + 1
        end
        return
      end
      last = errors.message(status)
      if last:match("HTTP 4%d%d") then
        break -- a 400 (hash mismatch) will not change by asking again
      end
      task.sleep(math.min(10, 0.2 * 2 ^ (attempt - 1)))
    end
    error(last, 0)
  end

  function self.streams(source, list)
    local state, save = checkpoint(dir, "streams-" .. source)
    local todo = {}
    for _, s in ipairs(list) do
      if not state.done or s.key > state.done then
        s.source = source
        todo[#todo + 1] = s
      end
    end
    if #todo < #list then
      log.info("resuming the streams of " .. source, { after = state.done, left = #todo })
    end
    local chunk = math.max(1, p.concurrency * 4)
    for i = 1, #todo, chunk do
      local part = { table.unpack(todo, i, math.min(#todo, i + chunk - 1)) }
      task.map(part, p.concurrency, self.post_stream)
      state.done = part[#part].key
      save()
    end
  end

  ---Whether the dispatcher already holds the batch (read from its events; used only for a batch in
  ---doubt). `state.seek` remembers where the search may start next time.
  function self.arrived(pair, events, state, save)
    local first, last = events[1].id, events[#events].id
    local cursor, seen_first = state.seek, false
    while true do
      local page = api.events(pair.source, pair.event_type, cursor, 1000, true)
      for _, e in ipairs(page.events) do
        if e.id == first then
          seen_first = true
          state.seek = cursor
          save()
        end
        if seen_first and e.id == last then
          return true
        end
      end
      if #page.events == 0 or not page.more then
        if not seen_first then
          state.seek = cursor
          save()
        end
        return false
      end
      cursor = page.next_cursor
    end
  end

  ---Restores the streams a 409 names (from this store), so the batch can be sent again.
  function self.missing(pair, events, shas)
    local labels = {}
    for _, e in ipairs(events) do
      for _, s in ipairs(e.streams or {}) do
        labels[s.sha256] = s.label
      end
    end
    for _, sha in ipairs(shas) do
      local label = labels[sha]
      local key = label and layout.stream_key(p.prefix, pair.source, label, sha)
      if not key or not store:exists(key) then
        error(string.format("%s: the dispatcher lacks stream %s and the backup has none (%s)", pair.name, sha,
          key or "no event of the batch names it"), 0)
      end
      self.post_stream({ source = pair.source, label = label, sha256 = sha, key = key })
      self.stats.missing_restored = self.stats.missing_restored + 1
    end
  end

  ---Sends one batch until the dispatcher has it exactly once.
  function self.post_batch(pair, b, events, state, save)
    if state.posting == b.key then
      self.stats.in_doubt = self.stats.in_doubt + 1
      if self.arrived(pair, events, state, save) then
        self.stats.in_doubt_found = self.stats.in_doubt_found + 1
        log.info("a batch whose answer was lost had arrived", { key = b.key })
        return
      end
    end
    state.posting = b.key
    save()
    for attempt = 1, p.retries + 1 do
      local ok, r = pcall(api.restore_events, pair.source, pair.event_type, events)
      if ok and r.status == 200 then
        return
      elseif ok and r.status == 409 and type(r.json) == "table" and type(r.json.missing_streams) == "table" then
        log.warn("the dispatcher lacks streams; restoring them first", { pair = pair.name, count = #r.json.missing_streams })
        self.missing(pair, events, r.json.missing_streams)
      elseif ok and r.status >= 400 and r.status < 500 and r.status ~= 429 then
        error(string.format("%s: batch %s refused: HTTP %d %s", pair.name, b.key, r.status, (r.body or ""):sub(1, 300)), 0)
      else
        -- No answer, or a 5xx: it may have been applied.
        log.warn("restoring a batch got no clear answer; checking whether it arrived",
          { key = b.key, answer = ok and r.status or errors.message(r) })
        task.sleep(math.min(10, 0.2 * 2 ^ (attempt - 1)))
        self.stats.in_doubt = self.stats.in_doubt + 1
        if self.arrived(pair, events, state, save) then
          self.stats.in_doubt_found = self.stats.in_doubt_found + 1
          return
        end
      end
    end
    error(string.format("%s: batch %s could not be restored after %d attempts", pair.name, b.key, p.retries + 1), 0)
  end

  function self.events(pair)
    local state, save = checkpoint(dir, "events-" .. pair.name)
    local done = 0
    for _, b in ipairs(pair.batches) do
      if state.done and b.key <= state.done then
        done = done + 1
      else
        local events = read_batch(store, b.key)
        if #events > 0 then
          self.post_batch(pair, b, events, state, save)
        end
        state.done, state.posting = b.key, nil
        save()
        self.stats.batches = self.stats.batches + 1
        self.stats.events = self.stats.events + #events
      end
    end
    if done > 0 then
      log.info("resumed " .. pair.name .. " after its checkpoint", { skipped_batches = done })
    end
  end

  return self
end

local function dry_run(store, inv)
  local out = { dry_run = true, streams = {}, pairs = {} }
  for source, list in pairs(inv.streams) do
    local bytes = 0
    for _, s in ipairs(list) do
      bytes = bytes + s.size
    end
    out.streams[source] = { count = #list, stored_bytes = bytes }
  end
  for name, pr in pairs(inv.pairs) do
    local events, days = 0, {}
    for _, b in ipairs(pr.batches) do
      events = events + #read_batch(store, b.key)
      days[b.day] = true
    end
    out.pairs[name] = { batches = #pr.batches, events = events, days = #sorted_keys(days) }
  end
  return out
end

function M.run(p)
  local started = time.monotonic()
  local store = store_mod.open(p.store)
  local inv = inventory(store, p)
  if p.dry_run then
    return dry_run(store, inv)
  end
  local api = events_api.new(p)
  local dir = p.cache_dir or caches.default_dir("event-restore", store.url .. "\n" .. api.url, p.prefix)
  fs.mkdir(dir)
  local r = restorer(p, store, api, dir)
  for _, source in ipairs(sorted_keys(inv.streams)) do
    log.info("restoring streams", { source = source, count = #inv.streams[source] })
    r.streams(source, inv.streams[source])
  end
  local list = {}
  for _, name in ipairs(sorted_keys(inv.pairs)) do
    inv.pairs[name].name = name
    list[#list + 1] = inv.pairs[name]
  end
  if #list > 0 then
    task.map(list, #list, r.events)
  end
  r.stats.seconds = math.floor((time.monotonic() - started) * 1000) / 1000
  r.stats.checkpoints = dir
  log.info("event-restore finished", r.stats)
  return r.stats
end

return M
