-- replay: archived sink-topic data back into Kafka, one day at a time (source document 002). For each day
-- of the range: back up the day's dependent sink output (store folders, Druid segments), remove it, replay
-- the day's archived events into the output topic (in one Kafka transaction), then drop the backup and
-- kill the segments, or on any failure put everything back and check it is exactly as before. Slack hears
-- of every day. The steps and their state are in stdlib/rewind/replay.lua; the dependents config in
-- stdlib/rewind/replay_config.lua.
local store_mod = require("rewind.store")
local kafka = require("rewind.kafka")
local lock = require("rewind.lock")
local log = require("rewind.log")
local time = require("rewind.time")
local errors = require("rewind.errors")
local notify = require("rewind.notify")
local layout = require("rewind.archive_layout")
local shard = require("rewind.shard")
local json = require("rewind.json")
local config = require("rewind.replay_config")
local replay = require("rewind.replay")
local druid_api = require("rewind.druid_api")

local ENTRY_DOC = "an entry of the dependents config as source document 002 writes it (so that the document "
  .. "itself works as --params-file): {outputKafkaTopic, dependentSinkSources = [{type = azure|druid, prefix}]}"

return {
  description = "Replay archived sink-topic data into Kafka day by day, backing up, removing and restoring the dependent sink data and Druid segments",
  params = {
    store = { type = "string", aliases = { "bucket" }, doc = "store holding the archive and the dependents (az://container, s3://bucket, a directory; default REWIND_STORE or the local store)" },
    prefix = { type = "string", doc = "folder of the archived sink data to replay (default: the source entry's name)" },
    file_path = { type = "string", aliases = { "filePath" }, doc = "replay exactly this one object (a missing-data replay): no dependents are touched" },
    start_date = { type = "date", aliases = { "startDate" }, doc = "first day to replay, yyyy-MM-dd" },
    end_date = { type = "date", aliases = { "endDate" }, doc = "last day to replay, yyyy-MM-dd (default: start_date)" },
    topic = { type = "string", doc = "output topic (default: the entry's outputKafkaTopic)" },
    brokers = { type = "string", aliases = { "brokerList" }, doc = "Kafka bootstrap servers, host:port[,host:port]" },
    delete_backups = { type = "boolean", default = true, aliases = { "deleteBackups" }, doc = "delete the replay-backup copies once a day succeeded (false for a missing-data replay, as the source says)" },
    config = { type = "string", doc = "the dependents config file (JSON as in source document 002)" },
    source = { type = "string", doc = "which entry of the config to replay (ingest, raw, unique, failed, wfs, ...)" },
    sources = { type = "table", doc = "config entries by name (instead of config=FILE)" },
    ingest = { type = "table", doc = ENTRY_DOC }, raw = { type = "table", doc = ENTRY_DOC },
    unique = { type = "table", doc = ENTRY_DOC }, failed = { type = "table", doc = ENTRY_DOC },
    wfs = { type = "table", doc = ENTRY_DOC },
    layout = { type = "string", default = "topic-archive", doc = "where a day of the archive is: a preset (topic-archive: {prefix}/{yyyy-MM-dd}/, daily: {prefix}/{yyyy}/{MM}/{dd}/, secor: {prefix}/dt={yyyy-MM-dd}/, kafka-connect: {prefix}/topics/{topic}/year={yyyy}/month={MM}/day={dd}/) or a template with those placeholders" },
    dependent_layout = { type = "string", doc = "where a day of a store dependent's output is (default: layout); an entry's dependent may set its own \"layout\"" },
    archived_topic = { type = "string", doc = "the {topic} of the templates (kafka-connect layout)" },
    format = { type = "string", default = "jsonl", choices = { "jsonl", "envelope", "lines" }, doc = "archived lines: jsonl (one event per line, the source's), envelope (topic-archive format=envelope: keys, headers, timestamps, partitions kept) or lines" },
    key_field = { type = "string", doc = "jsonl: the message key from this top-level field" },
    partition = { type = "string", default = "key", choices = { "key", "preserve", "any" }, doc = "key (by key hash), preserve (envelope: the archived partition), any (round robin)" },
    transactional = { type = "string", default = "auto", choices = { "auto", "true", "false" }, doc = "each day in one Kafka transaction, committed only when the day succeeded (auto: when the brokers support it)" },
    transaction_timeout = { type = "duration", default = "60s", doc = "how long a commit or abort may wait for the brokers" },
    druid_coordinator = { type = "string", doc = "Druid coordinator URL (needed when the entry has druid dependents)" },
    druid_overlord = { type = "list", doc = "Druid overlord URLs, tried in order (default: the coordinator)" },
    kill_timeout = { type = "duration", default = "30m", doc = "how long a Druid kill task may run" },
    slack_webhook = { type = "string", secret = true, env = "SLACK_WEBHOOK", doc = "Slack incoming webhook for the per-day messages" },
    dry_run = { type = "boolean", default = false, doc = "print per day what would be copied, deleted, replayed and killed; change nothing" },
    concurrency = { type = "integer", default = 8, doc = "store copies and deletes in flight (files are replayed in order, one at a time)" },
    max_errors = { type = "integer", doc = "malformed lines allowed per file before the day fails (default: any number, counted)" },
    kafka_config = { type = "table", doc = "extra librdkafka producer settings (security.protocol, sasl.*, transaction.timeout.ms, ...)" },
    state_prefix = { type = "string", doc = "where the per-day state and backups go (default replay-state/<source>)" },
    resolve = { type = "string", choices = { "committed", "replay" }, doc = "for a day an earlier run left while committing: committed (finish it) or replay (put it back, replay it next run)" },
    lock_ttl = { type = "duration", default = "2m", doc = "lease time of the replay's lock (renewed while it runs)" },
    index = { type = "integer", doc = "this copy's share of the days when `count` copies run side by side, from 0 (default: JOB_COMPLETION_INDEX, as a Kubernetes Indexed Job sets it)" },
    count = { type = "integer", doc = "how many copies share the days (default: JOB_COMPLETION_COUNT); each takes a contiguous slice" },
  },
  run = function(p)
    local entries = p.sources or {}
    if p.config then
      local rok, doc = pcall(config.read_file, p.config)
      if not rok then errors.usage(tostring(doc)) end
      for k, v in pairs(doc) do entries[k] = v end
    end
    for _, name in ipairs({ "ingest", "raw", "unique", "failed", "wfs" }) do
      if p[name] ~= nil then entries[name] = p[name] end
    end
    local ok, entry = pcall(config.pick, entries, p.source)
    if not ok then errors.usage(tostring(entry)) end
    local topic = p.topic or entry.topic
    if not p.brokers and not p.dry_run then errors.usage("missing required param 'brokers' (alias brokerList)") end
    if not p.file_path and not p.start_date then errors.usage("pass start_date (startDate) and end_date, or file_path") end
    local end_date = p.end_date or p.start_date
    if p.start_date and end_date < p.start_date then
      errors.usage(string.format("end_date %s is before start_date %s", end_date, p.start_date))
    end
    if #entry.druid > 0 and not p.druid_coordinator then
      errors.usage("entry " .. entry.name .. " has druid dependents (" .. table.concat(entry.druid, ", ") .. "): pass druid_coordinator=URL")
    end
    local lok, template = pcall(layout.template, p.layout)
    if not lok then errors.usage(tostring(template)) end
    local dok, dep_template = pcall(layout.template, p.dependent_layout or p.layout)
    if not dok then errors.usage(tostring(dep_template)) end

    local st = store_mod.open(p.store)
    local ctx = {
      store = st, entry = entry, topic = topic, concurrency = p.concurrency, delete_backups = p.delete_backups,
      state_prefix = p.state_prefix or ("replay-state/" .. entry.name),
      archive = { prefix = p.prefix or entry.name, topic = p.archived_topic, template = template },
      dependent_template = dep_template, file_path = p.file_path, resolve = p.resolve,
      txn_timeout = p.transaction_timeout, kill_timeout = p.kill_timeout,
      send = { topic = topic, format = p.format, key_field = p.key_field, partition = p.partition,
        max_errors = p.max_errors },
    }
    if p.file_path then ctx.entry = { name = entry.name, topic = entry.topic, stores = {}, druid = {} } end
    if #ctx.entry.druid > 0 then
      ctx.druid = druid_api.client({ coordinator = p.druid_coordinator, overlord = p.druid_overlord })
    end
    -- Deletes stay out of the archive and of rewind's own state: a dependent folder that overlaps them
    -- would have the replay delete what it reads.
    local sample = p.start_date or "2000-01-01"
    local guarded = { layout.day_prefix(template, sample, ctx.archive), ctx.state_prefix .. "/" }
    for _, dep in ipairs(ctx.entry.stores) do
      local dp = replay.dependent_prefix(ctx, dep, sample)
      for _, g in ipairs(guarded) do
        if dp:sub(1, #g) == g or g:sub(1, #dp) == dp then
          errors.usage(string.format("entry %s: dependent %s (%s) overlaps %s, which the replay reads or keeps its state in",
            entry.name, dep.prefix, dp, g))
        end
      end
    end
    local days = {}
    -- Copies side by side (an Indexed Job) each take a contiguous slice of the days; the per-day state
    -- makes a retried copy resume its slice.
    local pos = not p.file_path and shard.position(p) or nil
    if not p.file_path then
      for d in time.days(p.start_date, end_date) do days[#days + 1] = d end
      days = shard.share(days, pos)
    end

    if p.dry_run and p.file_path then
      local files = replay.archived(ctx, nil)
      print(string.format("replay 1 file (%s) %s into %s; no dependents touched",
        replay.human_bytes(files[1].size or 0), p.file_path, topic))
      return { dry_run = true, file_path = p.file_path, bytes = files[1].size, topic = topic }
    end
    if p.dry_run then
      local plans = {}
      for _, d in ipairs(days) do
        local plan = replay.plan(ctx, d)
        plans[#plans + 1] = plan
        print(replay.plan_line(plan, topic))
      end
      return { dry_run = true, source = entry.name, topic = topic, share = shard.describe(pos), days = json.array(plans) }
    end

    local transactional = p.transactional ~= "false"
    local kcfg = {}
    if transactional then kcfg["transaction.timeout.ms"] = 900000 end
    for k, v in pairs(p.kafka_config or {}) do kcfg[k] = v end
    -- Each copy of a split replay is its own transactional producer (one id would fence the others).
    local txn_id = transactional and ("rewind-replay-" .. ctx.state_prefix:gsub("[^%w%._%-]", "_")
      .. (pos and ("-" .. pos.index .. "-of-" .. pos.count) or "")) or nil
    ctx.producer = kafka.producer({ brokers = p.brokers, config = kcfg, transactional_id = txn_id })
    if transactional then
      -- Probe before any day is touched: brokers without transactions (or without the right to use them)
      -- get plain sends with transactional=auto, and stop the run with transactional=true.
      local pok, perr = pcall(function()
        ctx.producer:begin_transaction(p.transaction_timeout)
        ctx.producer:abort_transaction(p.transaction_timeout)
      end)
      local why = tostring(perr)
      if not pok and p.transactional == "auto" and (why:find("UNSUPPORTED", 1, true)
          or why:lower():find("not supported", 1, true) or why:find("AUTHORIZATION", 1, true)) then
        log.warn("the brokers do not support transactions here: replaying without them (" .. why .. ")")
        transactional = false
        -- Such brokers (before Kafka 0.11) give no producer ids: no idempotence either.
        local plain = { ["enable.idempotence"] = false }
        for k, v in pairs(p.kafka_config or {}) do
          if k ~= "transaction.timeout.ms" then plain[k] = v end
        end
        ctx.producer = kafka.producer({ brokers = p.brokers, config = plain })
      elseif not pok then
        error("replay: cannot start a Kafka transaction: " .. why, 0)
      end
    end
    ctx.transactional = transactional

    if p.file_path then
      -- A missing-data replay of one object: no day state, no dependents.
      local m = { }
      local t0 = time.monotonic()
      local sok, serr = pcall(replay.send_files, ctx, replay.archived(ctx, nil), m, "replay " .. p.file_path)
      m.seconds = time.monotonic() - t0
      local text = sok and string.format(":white_check_mark: replay of %s into %s done: %d events, %d malformed lines, %s",
          p.file_path, topic, m.events or 0, m.malformed or 0, time.format_duration(m.seconds))
        or string.format(":x: replay of %s into %s FAILED: %s", p.file_path, topic, tostring(serr))
      if p.slack_webhook then
        local nok, nerr = pcall(notify.slack, p.slack_webhook, text)
        if not nok then log.warn("could not tell Slack: " .. tostring(nerr)) end
      end
      if not sok then error(serr, 0) end
      m.file_path, m.topic, m.transactional = p.file_path, topic, transactional
      return m
    end

    local results = {}
    lock.with(st, pos and string.format("replay-%d-of-%d", pos.index, pos.count) or "replay", function()
      for _, d in ipairs(days) do
        local s = replay.run_day(ctx, d)
        if s.step == "done" or s.step == "failed" then
          if s.resumed ~= "already done" and p.slack_webhook then
            local sok, serr = pcall(notify.slack, p.slack_webhook, replay.message(entry.name, topic, s))
            if not sok then log.warn("could not tell Slack about day " .. d .. ": " .. tostring(serr)) end
          end
        end
        local m = s.metrics or {}
        results[#results + 1] = { day = d, status = s.resumed == "already done" and "already done" or s.step,
          error = s.error, events = m.events, files = m.files, bytes = m.bytes, malformed = m.malformed,
          deleted = m.deleted, segments = m.segments, killed = m.killed, transaction = m.transaction,
          seconds = m.seconds, resumed_at = s.resumed ~= "already done" and s.resumed or nil, reason = s.reason }
      end
    end, { prefix = ctx.state_prefix, ttl = p.lock_ttl, owner = "replay" })

    local failed = {}
    for _, r in ipairs(results) do
      if r.status == "failed" then failed[#failed + 1] = r.day .. " (" .. tostring(r.error) .. ")" end
    end
    if #failed > 0 then
      error(string.format("replay: %d of %d days failed and were put back: %s", #failed, #results,
        table.concat(failed, "; ")), 0)
    end
    return { source = entry.name, topic = topic, transactional = transactional, share = shard.describe(pos),
      days = json.array(results) }
  end,
}
