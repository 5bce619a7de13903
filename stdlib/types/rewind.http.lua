---@meta
-- rewind.http: HTTP with JSON bodies, timeouts and retries with backoff on 429/5xx/connection errors.
-- A non-2xx answer raises an error carrying the status and body (unless `check=false`); credentials in
-- headers and URLs never appear in errors or logs.

---@class rewind.http.Options
---@field headers? table<string,string>
---@field json? any             a body encoded as JSON (sets Content-Type)
---@field body? string|rewind.Reader  a reader is streamed (sent once: such a request is never retried)
---@field basic_auth? {user: string, password?: string}  HTTP basic auth (the password is a secret)
---@field form? table<string,string>
---@field query? table<string,any>
---@field timeout? string|number  per attempt; default 60s
---@field retries? integer      default 3
---@field retry_on? integer[]   default {429, 500, 502, 503, 504}
---@field backoff? number       first delay in seconds, doubled each attempt; default 0.5
---@field check? boolean        raise on a non-2xx answer (default true)
---@field stream? boolean       return the body as `reader` instead of reading it
---@field method? string        (request only)
---@field url? string           (request only)

---@class rewind.http.Response
---@field status integer
---@field headers table<string,string>
---@field url string
---@field body? string
---@field json? any             the decoded body when it is JSON
---@field reader? rewind.Reader  with `stream=true`

local M = {}

---@param opts rewind.http.Options
---@return rewind.http.Response
function M.request(opts) end

---@param url string
---@param opts? rewind.http.Options
---@return rewind.http.Response
function M.get(url, opts) end

---@param url string
---@param opts? rewind.http.Options
---@return rewind.http.Response
function M.post(url, opts) end

---@param url string
---@param opts? rewind.http.Options
---@return rewind.http.Response
function M.put(url, opts) end

---@param url string
---@param opts? rewind.http.Options
---@return rewind.http.Response
function M.patch(url, opts) end

---@param url string
---@param opts? rewind.http.Options
---@return rewind.http.Response
function M.delete(url, opts) end

---@param url string
---@param opts? rewind.http.Options
---@return rewind.http.Response
function M.head(url, opts) end

return M
