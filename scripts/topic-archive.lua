-- topic-archive: reads Kafka topics with a consumer group and writes batches of records to a store as
-- gzipped JSONL (one message value per line, or with format=envelope one whole record per line), under
--   <prefix>/<topic>/<YYYY-MM-DD>/<HH>/<topic>-<partition>-<first offset, 20 digits>.jsonl.gz
-- (UTC hour of the batch's first record; see stdlib/rewind/archive_layout.lua).
-- A batch closes at `batch` records or `max_wait` after its first record, whichever comes first.
-- Offsets are committed only after the batch object is written: a crash loses nothing and at most
-- re-writes the same key. Batching and gzip happen in Rust (`c:archive_batch`); Lua only orchestrates.
-- Several instances may share the group: when a rebalance takes partitions away from one, the consumer
-- drops their unwritten records (never written, never committed), and their new owner reads them again
-- from the committed offset (see src/prims/kafka/rebalance.rs).
local kafka = require("rewind.kafka")
local store_mod = require("rewind.store")
local log = require("rewind.log")
local task = require("rewind.task")
local layout = require("rewind.archive_layout")

return {
  description = "Archive Kafka topics into a store as gzipped JSONL batches, committing offsets after each write",
  -- SIGTERM is how a long-running archive normally stops: the on_exit handler writes and commits what is
  -- open, and the run then ends as done (exit 0).
  graceful_stop = true,
  params = {
    brokers = { type = "string", required = true, doc = "bootstrap servers, host:port[,host:port]" },
    topics = { type = "list", required = true, doc = "topics to archive" },
    group = { type = "string", default = "rewind-topic-archive", doc = "consumer group (holds the archived position)" },
    store = { type = "string", doc = "store URL or directory (default: REWIND_STORE, the config file's store, else the local store)" },
    prefix = { type = "string", default = "kafka", doc = "key prefix inside the store" },
    batch = { type = "integer", default = 1000, doc = "records per batch object (per partition)" },
    max_wait = { type = "duration", default = "10m", doc = "a batch closes this long after its first record even if not full" },
    once = { type = "boolean", default = false, doc = "drain to the current end (high watermarks), then exit" },
    level = { type = "integer", default = 1, doc = "gzip level 1-9" },
    format = { type = "string", default = "values", choices = { "values", "envelope" },
      doc = "values: one message value per line (the default); envelope: one JSON object per record with key, headers, timestamp, partition, offset and value, so that replay can restore them faithfully" },
    concurrency = { type = "integer", default = 8, doc = "batch objects written at once" },
    config = { type = "table", doc = "extra librdkafka consumer settings (security.protocol, sasl.*, ...)" },
  },
  run = function(p)
    local started = require("rewind.time").monotonic()
    local store = store_mod.open(p.store)
    local c = kafka.consumer({ brokers = p.brokers, group = p.group, topics = p.topics, config = p.config })
    local totals = { batches = 0, records = 0, bytes = 0 }

    -- Writes a round of closed batches (several at once), then commits them with one request: a batch's
    -- offset is committed only after its object (and every other object of the round) is written.
    local function write_round(batches)
      task.map(batches, p.concurrency, function(b)
        local key = layout.key(p.prefix, b)
        store:put(key, b.data)
        log.debug("archived batch", { key = key, count = b.count })
      end)
      local next_offset = {}
      for _, b in ipairs(batches) do
        local tp = b.topic .. "\0" .. b.partition
        local cur = next_offset[tp]
        if not cur or b.last_offset + 1 > cur.offset then
          next_offset[tp] = { topic = b.topic, partition = b.partition, offset = b.last_offset + 1 }
        end
        totals.batches = totals.batches + 1
        totals.records = totals.records + b.count
        totals.bytes = totals.bytes + #b.data
      end
      local commits = {}
      for _, e in pairs(next_offset) do
        commits[#commits + 1] = e
      end
      -- 0: refused by an eager rebalance, which takes every partition back (the consumer archives
      -- nothing until then; the next owner reads from the committed offset).
      return c:commit(commits) > 0
    end

    -- A round holds at most one batch per partition (the k-th batch of each partition goes in round k),
    -- so a crash leaves at most one written but uncommitted object per partition, keyed at the committed
    -- offset. The next owner reads again from there and its first object overwrites that key; its batches
    -- may be cut elsewhere (max_wait, a stop), so a second uncommitted object further on would stay behind
    -- as a duplicate of records the new owner archives under other keys.
    local function write_all(batches)
      table.sort(batches, function(x, y) return x.first_offset < y.first_offset end)
      local rounds, seen = {}, {}
      for _, b in ipairs(batches) do
        local tp = b.topic .. "\0" .. b.partition
        seen[tp] = (seen[tp] or 0) + 1
        rounds[seen[tp]] = rounds[seen[tp]] or {}
        table.insert(rounds[seen[tp]], b)
      end
      for _, round in ipairs(rounds) do
        if not write_round(round) then
          return
        end
      end
    end

    -- On Ctrl-C or SIGTERM the run is cancelled; this writes what the open buffers hold (and any batch
    -- handed out but not committed when the signal came: written again under the same key) and commits
    -- it, then leaves the group so that the other members take the partitions over at once.
    local finished = false
    task.on_exit(function()
      if finished then
        return
      end
      write_all(c:take_open())
      c:close()
      log.info("topic-archive stopped", totals)
    end)

    while true do
      local r = c:archive_batch({ max = p.batch, wait = p.max_wait, drain = p.once, level = p.level,
        format = p.format })
      write_all(r.batches)
      if r.done then
        break
      end
    end
    finished = true
    c:close()
    totals.store = store.url
    totals.seconds = require("rewind.time").monotonic() - started
    return totals
  end,
}
