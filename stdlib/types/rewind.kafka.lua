---@meta
-- rewind.kafka: Kafka producer, consumer and admin (librdkafka).
local M = {}

---@class kafka.Batch
---@field topic string
---@field partition integer
---@field first_offset integer
---@field last_offset integer
---@field count integer
---@field first_timestamp number|nil epoch seconds
---@field last_timestamp number|nil
---@field bytes integer uncompressed bytes
---@field data string gzipped JSONL (one message value per line, or envelope lines with format="envelope")

---@class kafka.Producer
local Producer = {}
---Sends one message and waits for its delivery; raises with topic, partition and the librdkafka error.
---@param topic string
---@param value string
---@param opts? {key?: string, headers?: table<string,string>, partition?: integer}
---@return {partition: integer, offset: integer}
function Producer:send(topic, value, opts) end
---Waits until queued messages are delivered (default 30 s).
---@param timeout? number|string
function Producer:flush(timeout) end
---Streams newline-delimited records (gzip/zstd auto-detected) into a topic, in Rust.
---format="envelope" reads one whole record per line ({key|key_b64, value|value_b64, headers, timestamp,
---partition}, as `topic-archive format=envelope` writes them) and sends it with its key, headers and
---timestamp. partition: "key" (default: by key hash), "preserve" (the envelope's partition), "any"
---(round robin, whatever the key). On a transactional producer the messages join the open transaction.
---@param reader any a Reader (store object, file, exec stdout) or a string
---@param opts {topic: string, key_field?: string, format?: "jsonl"|"lines"|"envelope", partition?: "key"|"preserve"|"any", filter?: string|table, transform?: fun(record: any): any, max_errors?: integer, max_failures?: integer, compression?: "auto"|"gzip"|"zstd"|"none"}
---@return {read: integer, sent: integer, failed: integer, skipped: integer, malformed: integer, bytes: integer, first_malformed_lines: integer[], seconds: number}
function Producer:send_lines(reader, opts) end
---Opens a transaction (producer made with transactional_id). The first call runs init_transactions, which
---fences an older producer with the same id (its open transaction is aborted by the broker).
---@param timeout? number|string default 60 s
function Producer:begin_transaction(timeout) end
---Commits the open transaction: read_committed consumers then see all its messages. A commit that fails
---is aborted (none of its messages are ever seen) and raises.
---@param timeout? number|string default 60 s
function Producer:commit_transaction(timeout) end
---Aborts the open transaction: none of its messages are seen by read_committed consumers.
---@param timeout? number|string default 60 s
function Producer:abort_transaction(timeout) end

---@class kafka.Consumer
local Consumer = {}
---Messages polled. When the group takes partitions away meanwhile (a rebalance), their messages are not
---returned and commit() without arguments does not commit them: their next owner reads them.
---@param max? integer default 500
---@param timeout? number|string default 1 s
---@return {topic: string, partition: integer, offset: integer, key: string|nil, value: string|nil, timestamp: number|nil, headers: table<string,string>}[]
function Consumer:poll(max, timeout) end
---Commits synchronously what poll returned, or the given next offsets. A commit refused while the group
---changes generation (IllegalGeneration, RebalanceInProgress) is sent again for up to 20 s with
---cooperative rebalancing; with the eager protocol (the default) it is given up and returns 0: every
---partition goes back to the group at the next poll, and their next owner reads from the committed offset.
---@param offsets? {topic: string, partition: integer, offset: integer}[]
---@return integer partitions committed
function Consumer:commit(offsets) end
---@param topic string
---@param partition integer
---@param to integer|"earliest"|"latest"|string|{time: number|string}
function Consumer:seek(topic, partition, to) end
---Gathers messages into per-partition JSONL batches (Rust) and returns the closed ones gzipped: up to 32
---per call, after at most ~200 ms, or when a drain ends. A rebalance that takes partitions away drops their
---open and uncommitted batches (their next owner reads them again from the committed offset).
---format="envelope" writes one JSON object per record (topic, partition, offset, timestamp, key, headers,
---value; binary keys and values as key_b64/value_b64) instead of the value alone.
---@param opts? {max?: integer, wait?: number|string, drain?: boolean, level?: integer, format?: "values"|"envelope"}
---@return {batches: kafka.Batch[], done: boolean}
function Consumer:archive_batch(opts) end
---Closes every open archive buffer and returns them, with the batches handed out earlier whose offsets are
---not committed yet (a run stopped while writing them: write them again, same keys, then commit).
---@return kafka.Batch[]
function Consumer:take_open() end
function Consumer:close() end

---@class kafka.Admin
local Admin = {}
---@param opts? {timeout?: number|string}
---@return {name: string, messages: integer, partitions: {id: integer, low: integer, high: integer}[]}[]
function Admin:topics(opts) end
---@param name string
---@param partitions? integer
---@param opts? {replication?: integer, config?: table<string, string>}
---@return boolean
function Admin:create_topic(name, partitions, opts) end

---Idempotent, acks=all producer (and enable.sparse.connections=false); every librdkafka setting in config passes through.
---With transactional_id (or config["transactional.id"]) sends go through begin/commit_transaction.
---@param opts {brokers: string|string[], transactional_id?: string, config?: table<string, string|number|boolean>}
---@return kafka.Producer
function M.producer(opts) end

---Consumer with manual commits (enable.auto.commit=false, enable.auto.offset.store=false).
---@param opts {brokers: string|string[], group: string, topics: string|string[], config?: table, start?: "earliest"|"latest"|number|string}
---@return kafka.Consumer
function M.consumer(opts) end

---@param opts {brokers: string|string[], config?: table}
---@return kafka.Admin
function M.admin(opts) end

return M
