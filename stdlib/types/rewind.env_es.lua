---@meta
-- rewind.env_es: Elasticsearch through its snapshot API (fs repository, kept as a tar in the store unless it is shared storage).

---An Elasticsearch part.
---@class rewind.env_es.Part
---@field url string            e.g. http://127.0.0.1:9200 (no trailing slash)
---@field user? string          basic-auth user
---@field password? string      basic-auth password; a secret
---@field repository string     name of the fs snapshot repository (registered when missing)
---@field location string       the repository's directory as Elasticsearch sees it (under path.repo)
---@field dir string            the same directory as rewind sees it
---@field indices? string       indices to snapshot (comma list, wildcards)
---@field shared? boolean       the repository is shared storage: record the snapshot, no tar

---The manifest record of an Elasticsearch snapshot.
---@class rewind.env_es.Record
---@field repository string
---@field snapshot string                   `rewind-<snapshot id>`
---@field uuid? string
---@field indices string[]                  sorted
---@field documents table<string, integer>  document count of each index
---@field shared boolean
---@field object? string                    "elasticsearch", the repository tar (not when shared)
---@field files? integer                    files in the tar

local M = {}

---Extension of the repository tar.
---@type string
M.TAR_EXT = "tar.zst"

---One call; returns the decoded answer and the status, raising with Elasticsearch's reason on an error
---answer. opts.ok lists extra statuses that are answers (e.g. 404 for "is it there?").
---@param es rewind.env_es.Part
---@param method string
---@param path string
---@param body? any JSON body
---@param opts? {ok?: integer[], timeout?: number|string, retries?: integer}
---@return any answer
---@return integer status
function M.call(es, method, path, body, opts) end

---Registers the fs repository `name` at `location` unless it is there already (pointing at the same
---place); a repository of that name elsewhere is an error (re-registered when readonly).
---@param es rewind.env_es.Part
---@param name string
---@param location string
---@param readonly? boolean
function M.ensure_repository(es, name, location, readonly) end

---Document counts of the given indices: {index = count}.
---@param es rewind.env_es.Part
---@param indices string[]
---@return table<string, integer>
function M.counts(es, indices) end

---Takes a snapshot (waiting for it) and records its indices with their document counts; unless shared,
---streams the repository directory as a tar into the snapshot object `elasticsearch` and deletes the
---snapshot from the repository. Returns the manifest record.
---@param snap rewind.snapshot.Snap
---@param es rewind.env_es.Part
---@param opts {level?: integer}
---@return rewind.env_es.Record
function M.backup(snap, es, opts) end

---The read-only repository a restore reads from, beside the live one: its name, its location as
---Elasticsearch sees it and its directory as rewind sees it (each with `-rewind-restore` appended).
---@param es rewind.env_es.Part
---@return string name
---@return string location
---@return string dir
function M.restore_repository(es) end

---Restores the recorded snapshot: the tar is extracted into the restore repository (not when shared),
---open indices it holds are closed, then replaced; the restore repository is removed afterwards.
---@param es rewind.env_es.Part
---@param record rewind.env_es.Record
---@param reader? rewind.Reader the tar (a verified snapshot reader); nil when shared
function M.restore(es, record, reader) end

---nil, or what differs between the recorded and the current document counts.
---@param es rewind.env_es.Part
---@param record rewind.env_es.Record
---@return string?
function M.check(es, record) end

return M
