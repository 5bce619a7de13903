-- event-backup: backs up the events of an event dispatcher (api-notes.md "Event dispatcher") and the
-- binary streams they refer to, as source document 004 describes. Events go in batches of gzip JSON lines:
--   <prefix>/events/<source>/<event_type>/<YYYY-MM-DD>/<first timestamp>-<first id>.jsonl.gz
-- and streams, de-duplicated, gzip-compressed and content-addressed:
--   <prefix>/streams/<source>/<label>/<aa>/<sha256>.gz
-- The pipeline is in stdlib/rewind/event_backup.lua.
local event_backup = require("rewind.event_backup")

return {
  description = "Back up a dispatcher's events in batches and the streams they refer to, de-duplicated by sha256",
  -- SIGTERM or Ctrl-C starts the ordered shutdown (a second one stops at once).
  drain_on_stop = true,
  params = {
    url = { type = "string", required = true, doc = "the dispatcher's base URL (http://host:port)" },
    pairs = { type = "list", required = true, doc = "source/event_type pairs to back up, each read by its own worker" },
    token = { type = "string", secret = true, env = "REWIND_DISPATCHER_TOKEN", doc = "bearer token for the dispatcher" },
    store = { type = "string", doc = "store URL or directory (default: REWIND_STORE, the config file's store, else the local store)" },
    prefix = { type = "string", default = "events", doc = "key prefix inside the store" },
    batch = { type = "integer", default = 1000, doc = "events per batch object (a batch closes at this many)" },
    max_wait = { type = "duration", default = "10m", doc = "a batch closes this long after its first event was found, full or not" },
    poll = { type = "duration", default = "5s", doc = "how long a caught-up worker waits before asking again" },
    once = { type = "boolean", default = false, doc = "read every pair to its current end, write, and exit (else run until stopped)" },
    stream_workers = { type = "integer", default = 8, doc = "streams downloaded and stored at once" },
    queue = { type = "integer", default = 1000, doc = "capacity of each queue (requests to the hit cache, downloads to the stream workers)" },
    max_consecutive_failures = { type = "integer", default = 5, doc = "stream failures in a row that shut the run down (the failed and queued requests go to the failure cache)" },
    hit_cache_size = { type = "integer", default = 200000, doc = "streams the in-memory hit cache holds" },
    hit_cache_ttl = { type = "duration", default = "7d", doc = "how long a stored stream is remembered (in memory and in the cache file)" },
    cache_dir = { type = "string", doc = "where the hit cache and the failure cache live (default: $XDG_STATE_HOME/rewind/event-backup/<store+prefix hash>)" },
    level = { type = "integer", default = 6, doc = "gzip level of event batches (JSON: compresses well)" },
    stream_level = { type = "integer", default = 1, doc = "gzip level of streams (often already compressed media: a low level costs least)" },
    timeout = { type = "duration", default = "60s", doc = "per HTTP request to the dispatcher" },
    progress = { type = "duration", default = "10s", doc = "how often counts are logged" },
    events_path = { type = "string", default = "/api/v1/events/{source}/{event_type}", doc = "path template: a page of events (GET, ?cursor=&limit=)" },
    stream_path = { type = "string", default = "/api/v1/streams/{source}/{label}/{sha256}", doc = "path template: a stream's bytes (GET)" },
  },
  run = function(p)
    if p.batch < 1 or p.stream_workers < 1 or p.queue < 1 or p.max_consecutive_failures < 1 then
      require("rewind.errors").usage("batch, stream_workers, queue and max_consecutive_failures must be at least 1")
    end
    return event_backup.run(p)
  end,
}
