-- rewind.event_backup: event-backup's pipeline (source document 004), as coroutines of one run:
--
--   event workers (one per source/event_type) --requests--> hit cache --downloads--> stream workers
--
-- * An event worker reads its pair with the saved cursor, closes a batch at `batch` events or `max_wait`
--   after its first event, writes it (gzip JSON lines), and saves the cursor beside the data only after
--   the batch is written AND every stream its events refer to is stored (or in the failure cache). A crash
--   therefore loses nothing: the next run reads the batch again and writes the same key (the same first
--   event), and re-requests its streams. Only one batch per pair is unconfirmed at a time, so a rerun
--   never leaves two objects holding one event.
-- * The hit cache drops requests for streams stored recently or already in flight; the stream workers
--   store the rest content-addressed (put_cas: HEAD first, then the download streams through a sha256
--   check and gzip into the store).
-- * A stream that fails goes to the failure cache; `max_consecutive_failures` in a row, an event worker
--   that fails, or a signal, shut the run down in order: event workers first (each finishes its batch),
--   then the hit cache (forwarding what is queued), then the stream workers (draining their queue; after
--   the failures, into the failure cache). Nothing in flight is lost.
local store_mod = require("rewind.store")
local task = require("rewind.task")
local json = require("rewind.json")
local codec = require("rewind.codec")
local log = require("rewind.log")
local time = require("rewind.time")
local lock = require("rewind.lock")
local layout = require("rewind.events_layout")
local events_api = require("rewind.events_api")
local caches = require("rewind.event_caches")
local errors = require("rewind.errors")

local M = {}

local function stream_id(req)
  return req.source .. "/" .. req.label .. "/" .. req.sha256
end

local function new_ticket()
  return { outstanding = 0 }
end

-- Waits until every stream a batch asked for is settled.
local function settled(ticket)
  while ticket.outstanding > 0 do
    task.sleep(0.01)
  end
end

---The shared state of one run.
local function pipeline(p, store, api, dir)
  local self = {
    p = p,
    store = store,
    api = api,
    hits = caches.hit_cache(dir, { size = p.hit_cache_size, ttl = p.hit_cache_ttl }),
    failures = caches.failure_cache(dir),
    requests = task.channel(p.queue),
    downloads = task.channel(p.queue),
    inflight = {}, -- stream id -> tickets waiting for it
    consecutive = 0,
    failing = nil, -- why the run is shutting down because something failed
    streams_broken = false, -- after max_consecutive_failures: the queue goes to the failure cache untried
    stats = { downloaded = 0, bytes = 0, deduplicated = 0, present = 0, failed = 0, cached = 0,
      retried = 0, recovered = 0 },
  }

  function self.settle(id)
    local waiting = self.inflight[id] or {}
    self.inflight[id] = nil
    for _, t in ipairs(waiting) do
      t.outstanding = t.outstanding - 1
    end
  end

  ---Stores one stream; on failure records the request in the failure cache. Never raises for a bad
  ---stream (only when the failure cache itself cannot be written: then nothing could be promised).
  function self.store_stream(req)
    local ok, res
    if self.streams_broken then
      ok, res = false, "not tried: shutting down (" .. self.failing .. ")"
    else
      ok, res = pcall(store.put_cas, store, function()
        return api.stream_reader(req.source, req.label, req.sha256)
      end, {
        prefix = layout.streams_dir(p.prefix, req.source, req.label),
        sha256 = req.sha256, size = req.size, compression = "gzip", level = p.stream_level, suffix = ".gz",
      })
    end
    local id = stream_id(req)
    if ok then
      self.consecutive = 0
      if res.new then
        self.stats.downloaded = self.stats.downloaded + 1
        self.stats.bytes = self.stats.bytes + (res.size or 0)
      else
        self.stats.present = self.stats.present + 1
      end
      self.hits.stored(id)
      if req.retry then
        self.failures.remove(req)
        self.stats.recovered = self.stats.recovered + 1
      end
    else
      if not self.streams_broken then
        self.consecutive = self.consecutive + 1
        self.stats.failed = self.stats.failed + 1
        res = errors.message(res)
        log.warn("stream could not be backed up; kept in the failure cache",
          { stream = id, error = res, in_a_row = self.consecutive })
        if self.consecutive >= p.max_consecutive_failures then
          self.streams_broken = true
          self.shutdown(string.format("%d stream failures in a row (the last: %s: %s)", self.consecutive, id,
            tostring(res)))
        end
      end
      if not req.retry then
        self.failures.add(req)
      end
      self.stats.cached = self.stats.cached + 1
    end
    self.settle(id)
  end

  function self.shutdown(reason)
    if not self.failing then
      self.failing = reason
      log.error("shutting down in order: " .. reason)
      task.stop()
    end
  end

  function self.stream_worker()
    while true do
      local req = self.downloads:recv()
      if req == nil then
        return
      end
      self.store_stream(req)
    end
  end

  -- The hit cache: one coroutine between the event workers and the stream workers.
  function self.hit_cache()
    while true do
      local req = self.requests:recv()
      if req == nil then
        break
      end
      local id = stream_id(req)
      local waiting = self.inflight[id]
      if waiting then
        waiting[#waiting + 1] = req.ticket
        self.stats.deduplicated = self.stats.deduplicated + 1
      elseif self.hits.known(id) then
        req.ticket.outstanding = req.ticket.outstanding - 1
        self.stats.deduplicated = self.stats.deduplicated + 1
      else
        self.inflight[id] = { req.ticket }
        self.downloads:send(req)
      end
    end
    self.downloads:close()
  end

  ---Retries what the failure cache holds, before any event is read.
  function self.retry_failures()
    local list = self.failures.list()
    if #list == 0 then
      return
    end
    log.info("retrying streams from the failure cache", { count = #list, cache = self.failures.path })
    local t = new_ticket()
    for _, req in ipairs(list) do
      local id = stream_id(req)
      if not self.inflight[id] then
        req.retry, req.ticket = true, t
        t.outstanding = t.outstanding + 1
        self.inflight[id] = { t }
        self.stats.retried = self.stats.retried + 1
        self.downloads:send(req)
      end
    end
    settled(t)
    self.hits.save()
  end

  return self
end

---One pair's worker. Returns its counts; raises what stopped it (after writing what it could).
local function pair_worker(run, source, event_type)
  local p, store, api = run.p, run.store, run.api
  local ckey = layout.cursor_key(p.prefix, source, event_type)
  local body = store:get_versioned(ckey)
  local saved = body and json.decode(body) or {}
  local cursor = saved.cursor
  local recent = {}
  for _, id in ipairs(saved.last_ids or {}) do
    recent[id] = true
  end
  local counts = { events = 0, batches = 0, repeated = 0 }
  local pending, pending_ids, first_found, ticket = {}, {}, nil, new_ticket()
  local committing, committed_cursor = nil, cursor

  -- Writes the pending batch, then (in the background) waits for its streams and saves the cursor.
  local function flush()
    if committing then
      committing:join()
      committing = nil
    end
    if #pending == 0 and cursor == committed_cursor then
      return
    end
    local ids = {}
    if #pending > 0 then
      local lines = {}
      for i, e in ipairs(pending) do
        lines[i] = json.encode(e)
        ids[i] = e.id
      end
      local key = layout.batch_key(p.prefix, source, event_type, pending[1])
      store:put(key, codec.compress(table.concat(lines, "\n") .. "\n", { codec = "gzip", level = p.level }))
      counts.events = counts.events + #pending
      counts.batches = counts.batches + 1
      log.debug("batch written", { key = key, events = #pending })
      recent = pending_ids
    else
      for id in pairs(recent) do
        ids[#ids + 1] = id
      end
    end
    local t, c = ticket, cursor
    committing = task.spawn(function()
      settled(t)
      run.hits.save()
      store:put(ckey, json.encode({ cursor = c, last_ids = json.array(ids), saved_at = time.format(time.now()) }))
    end)
    committed_cursor = cursor
    pending, pending_ids, first_found, ticket = {}, {}, nil, new_ticket()
  end

  local function take(page)
    for _, e in ipairs(page.events) do
      if type(e) ~= "table" or type(e.id) ~= "string" or type(e.timestamp) ~= "number" then
        error(string.format("%s/%s: an event without a string id and a numeric timestamp: %s", source,
          event_type, json.encode(e):sub(1, 200)), 0)
      end
      if recent[e.id] or pending_ids[e.id] then
        counts.repeated = counts.repeated + 1
      else
        pending[#pending + 1] = e
        pending_ids[e.id] = true
        first_found = first_found or time.monotonic()
        for _, s in ipairs(e.streams or {}) do
          if type(s) ~= "table" or type(s.label) ~= "string" or type(s.sha256) ~= "string"
            or not s.sha256:match("^" .. string.rep("%x", 64) .. "$") then
            error(string.format("%s/%s: event %s refers to a stream without a label and a 64-digit sha256: %s",
              source, event_type, e.id, json.encode(s):sub(1, 200)), 0)
          end
          ticket.outstanding = ticket.outstanding + 1
          run.requests:send({ source = source, label = s.label, sha256 = s.sha256, size = s.size, ticket = ticket })
        end
      end
    end
    if type(page.next_cursor) == "string" then
      cursor = page.next_cursor
    end
  end

  local ok, err = pcall(function()
    while not task.stopping() do
      local want = math.min(1000, p.batch - #pending)
      local page = api.events(source, event_type, cursor, want)
      take(page)
      local caught_up = #page.events == 0 or not page.more
      local waited = first_found and time.monotonic() - first_found or 0
      if #pending >= p.batch or (first_found and waited >= p.max_wait) then
        flush()
      elseif caught_up then
        if p.once then
          break
        end
        local nap = p.poll
        if first_found then
          nap = math.max(0.01, math.min(nap, p.max_wait - waited))
        end
        task.wait_stop(nap)
      end
    end
  end)
  -- Stopping, caught up (once) or failed: what is held is written; if that fails too, the cursor stays
  -- where it was and the next run reads these events again.
  local ok2, err2 = pcall(function()
    flush()
    if committing then
      committing:join()
    end
  end)
  if not ok then
    error(err, 0)
  end
  if not ok2 then
    error(err2, 0)
  end
  return counts
end

function M.run(p)
  local started = time.monotonic()
  local store = store_mod.open(p.store)
  local api = events_api.new(p)
  local pairs_list = {}
  for _, text in ipairs(p.pairs) do
    local source, event_type = layout.parse_pair(text)
    pairs_list[#pairs_list + 1] = { source = source, event_type = event_type, name = source .. "/" .. event_type }
  end
  local dir = p.cache_dir or caches.default_dir("event-backup", store.url, p.prefix)
  return lock.with_target(store, p.prefix, function()
    local run = pipeline(p, store, api, dir)
    -- A stage that breaks (its cache file cannot be written, say) would leave batches waiting for it
    -- forever: the whole run stops instead, with no cursor saved past what is done.
    local function guarded(name, fn)
      return function()
        local ok, err = pcall(fn)
        if not ok then
          task.abort(string.format("event-backup: the %s failed: %s", name, errors.message(err)))
        end
      end
    end
    local stream_tasks = {}
    for i = 1, p.stream_workers do
      stream_tasks[i] = task.spawn(guarded("stream worker", run.stream_worker))
    end
    local reporting = task.spawn(function()
      while true do
        task.sleep(p.progress)
        log.info("event-backup progress", run.stats)
      end
    end)
    run.retry_failures()
    local hit_cache = task.spawn(guarded("hit cache", run.hit_cache))
    local results, failures = {}, {}
    if not run.failing then
      task.map(pairs_list, #pairs_list, function(pair)
        local ok, res = pcall(pair_worker, run, pair.source, pair.event_type)
        if ok then
          results[pair.name] = res
        else
          failures[#failures + 1] = pair.name .. ": " .. errors.message(res)
          run.shutdown("the events of " .. pair.name .. " failed")
        end
      end)
    end
    -- The order of source document 004: events (done above), then the hit cache, then the streams.
    log.info("event workers stopped", { pairs = #pairs_list })
    run.requests:close()
    hit_cache:join()
    log.info("hit cache stopped", { queued_downloads = run.downloads:len() })
    for _, t in ipairs(stream_tasks) do
      t:join()
    end
    log.info("stream workers stopped", { failure_cache = run.failures.count() })
    run.hits.save()
    reporting:abort()
    local total = 0
    for _, r in pairs(results) do
      total = total + r.events
    end
    local summary = {
      events = total, pairs = results, streams = run.stats,
      failure_cache = { count = run.failures.count(), path = run.failures.path },
      seconds = math.floor((time.monotonic() - started) * 1000) / 1000,
    }
    log.info("event-backup finished", { events = total, streams = run.stats })
    if run.failing then
      local msg = string.format("event-backup stopped: %s. %d stream requests are in the failure cache %s; the next run retries them first",
        run.failing, summary.failure_cache.count, summary.failure_cache.path)
      if #failures > 0 then
        msg = msg .. "\n" .. table.concat(failures, "\n")
      end
      error(msg, 0)
    end
    return summary
  end, { owner = "event-backup" })
end

return M
