---@meta
-- rewind.td: Treasure Data client (parent segments, Audience Studio v5 entities, v3 jobs and imports).
local M = {}

---@class td.Client
---@field rest string REST (v3, /audiences) base URL
---@field cdp string CDP (/entities) base URL
---@field concurrency integer
local Client = {}

---@class td.ClientOpts
---@field endpoint? string US, EU, JP, AP02, AP03, a host or a URL (default US)
---@field apikey string TD1 API key (registered as a secret)
---@field concurrency? integer requests in flight for by_folder walks (default 16)
---@field timeout? string|number per request (default "60s")
---@field retries? integer retries on 429/5xx (default 5)

---Makes a client.
---@param opts td.ClientOpts
---@return td.Client
function M.client(opts) end

---Resolves an endpoint setting to base URLs.
---@param endpoint string
---@return {rest: string, cdp: string}
function M.resolve_endpoint(endpoint) end

---The HTTP status in an error raised by a client, or nil.
---@param err any
---@return integer|nil
function M.status_of(err) end

---Whether a request that raised `err` may have been applied anyway: a 5xx answer or no answer at all
---(timeout, dropped connection). A 4xx answer is a refusal: nothing was applied.
---@param err any
---@return boolean
function M.uncertain(err) end

---The parent folder id of an entity, or nil for a root folder.
---@param entity table
---@return string|nil
function M.parent_of(entity) end

---The collection path for an entity type (nil when not creatable).
---@param etype string
---@return string|nil
function M.endpoint_for(etype) end

---@param api "rest"|"cdp"
---@param method string
---@param path string
---One request. Not idempotent (a POST, unless opts.idempotent): repeated only after a 429; a 5xx or a
---lost answer raises at once (see td.uncertain). Idempotent: rewind.http retries 429, 5xx, lost answers.
---@param opts? {json?: any, query?: table, form?: table, body?: string, headers?: table, ok404?: boolean, raw?: boolean, idempotent?: boolean}
---@return any decoded, table response
function Client:request(api, method, path, opts) end
---Runs a create so that it takes effect at most once: after a lost answer, `find()` looks for what it may
---have made, and the create is sent again only when nothing is there.
---@param what string named in log lines
---@param post fun(): table
---@param find fun(): table|nil
---@return table object, boolean found_after_lost_answer
function Client:create_once(what, post, find) end
---The parent segment with this name, or nil.
---@return table|nil
function Client:find_parent_segment(name) end
---The entity of this type and name directly in a folder, or nil.
---@return table|nil
function Client:find_child(folder_id, name, etype) end
---@return table[]
function Client:list_parent_segments() end
---@return table
function Client:get_parent_segment(id) end
---Creates a parent segment at most once (a lost answer is followed by a lookup by name).
---@return table
function Client:create_parent_segment(body) end
---@return table
function Client:update_parent_segment(id, body) end
function Client:delete_parent_segment(id) end
---Starts a run; answers the execution. A lost answer is followed by a look at the executions (never two runs).
---@return table
function Client:run_parent_segment(id) end
---Executions, newest first.
---@return table[]
function Client:executions(id) end
---Waits for a run to succeed; logs progress; raises on error/cancel or timeout.
---@param opts? {session?: string, timeout?: number, poll?: number}
---@return table execution
function Client:wait_for_run(id, opts) end
---@return table|nil
function Client:parent_segment_entity(id) end
---The v5 root folder id of a parent segment, or nil (v5 not enabled / never run).
---@return string|nil
function Client:root_folder_id(id) end
---One by-folder request at a fixed depth.
---@return {data: table[], included: table[]}
function Client:by_folder_raw(folder_id, depth) end
---Every entity under a folder however deep (re-queries boundary folders; never truncates).
---@param opts? {depth?: integer}
---@return {data: table[], included: table[]}
function Client:by_folder(folder_id, opts) end
---Creates an entity at most once (a lost answer is followed by a lookup by name in its parent folder).
---@return table entity, boolean found_after_lost_answer
function Client:create_entity(entity) end
---@return table
function Client:get_entity(etype, id) end
function Client:get_folder(id) end
function Client:update_folder(id, attributes) end
function Client:delete_folder(id) end
function Client:create_folder(parent_id, attributes) end
function Client:get_segment(id) end
function Client:update_segment(id, attributes) end
function Client:delete_segment(id) end
function Client:create_segment(parent_id, attributes, etype) end
function Client:get_predictive_segment(id) end
function Client:update_predictive_segment(id, attributes) end
function Client:delete_predictive_segment(id) end
function Client:create_predictive_segment(parent_id, attributes) end
---@param opts? {exist_ok?: boolean}
function Client:create_database(db, opts) end
---@param opts? {exist_ok?: boolean}
function Client:create_table(db, tbl, opts) end
function Client:list_tables(db) end
---Imports records (each with a `time` field) as msgpack.gz.
function Client:import(db, tbl, records) end
---@param opts? {engine?: "presto"|"hive", priority?: integer, result?: string, retry_limit?: integer}
---@return string job_id
function Client:issue_job(db, query, opts) end
function Client:job_status(id) end
function Client:wait_job(id, opts) end
---@return any[][] rows
function Client:job_result(id) end
---@return any[][] rows
function Client:query(db, sql, opts) end

return M
