-- event-restore: restores what event-backup stored into an event dispatcher (api-notes.md "Event
-- dispatcher"): every selected source's streams first, then the events of each (source, event type),
-- day by day and batch by batch in time order, resuming from local checkpoints after a restart.
-- The procedure is in stdlib/rewind/event_restore.lua.
local event_restore = require("rewind.event_restore")

return {
  description = "Restore backed-up streams, then events in order, into an event dispatcher; resumes after a restart",
  params = {
    url = { type = "string", doc = "the dispatcher's base URL (required unless dry_run=true)" },
    token = { type = "string", secret = true, env = "REWIND_DISPATCHER_TOKEN", doc = "bearer token for the dispatcher" },
    store = { type = "string", doc = "store URL or directory holding the backup (default: REWIND_STORE, the config file's store, else the local store)" },
    prefix = { type = "string", default = "events", doc = "key prefix the backup was written under" },
    sources = { type = "list", doc = "only these sources (default: every source in the backup)" },
    event_types = { type = "list", doc = "only these event types (default: all)" },
    from = { type = "date", doc = "first day of events to restore, YYYY-MM-DD (UTC day of a batch's first event)" },
    to = { type = "date", doc = "last day of events to restore, YYYY-MM-DD" },
    dry_run = { type = "boolean", default = false, doc = "count what would be restored (streams, batches, events, days) and send nothing" },
    concurrency = { type = "integer", default = 8, doc = "streams posted at once" },
    retries = { type = "integer", default = 4, doc = "attempts after the first for a stream or a batch that got no clear answer" },
    cache_dir = { type = "string", doc = "where the checkpoints live (default: $XDG_STATE_HOME/rewind/event-restore/<store+url+prefix hash>)" },
    timeout = { type = "duration", default = "60s", doc = "per HTTP request to the dispatcher" },
    events_path = { type = "string", default = "/api/v1/events/{source}/{event_type}", doc = "path template: the dispatcher's events (read only to settle a batch whose answer was lost)" },
    restore_stream_path = { type = "string", default = "/api/v1/restore/streams/{source}/{label}", doc = "path template: post a stream (X-Sha256 header, the bytes)" },
    restore_events_path = { type = "string", default = "/api/v1/restore/events/{source}/{event_type}", doc = "path template: post a batch of events (a JSON array, in order)" },
  },
  run = function(p)
    local errors = require("rewind.errors")
    if not p.dry_run and not p.url then
      errors.usage("url is required (the dispatcher to restore into), unless dry_run=true")
    end
    if p.from and p.to and p.from > p.to then
      errors.usage(string.format("from (%s) is after to (%s)", p.from, p.to))
    end
    if p.concurrency < 1 or p.retries < 0 then
      errors.usage("concurrency must be at least 1 and retries at least 0")
    end
    return event_restore.run(p)
  end,
}
