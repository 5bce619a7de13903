---@meta
-- rewind.env_firebase: a Firebase Realtime Database node through its REST API, exported through zstd into the store and PUT back.

---A Firebase part. The secret travels in the query (auth=), a token in a bearer header; both are redacted.
---@class rewind.env_firebase.Part
---@field url string       Realtime Database URL, e.g. https://athena.firebaseio.com (no trailing slash)
---@field path? string     node exported and replaced (default "/")
---@field secret? string   database secret; a secret
---@field token? string    OAuth access token, used instead of the secret; a secret

---The manifest record of a Firebase export.
---@class rewind.env_firebase.Record
---@field path string
---@field object string          "firebase"
---@field size integer           bytes stored (compressed)
---@field export_bytes integer   size of the export itself
---@field export_sha256 string   sha256 of the export itself

local M = {}

---Extension of the export object.
---@type string
M.EXT = "json.zst"

---An export of the node (`<path>.json?format=export`, priorities kept) as a reader; raises with
---Firebase's error on a failed answer.
---@param fb rewind.env_firebase.Part
---@return rewind.Reader
function M.export(fb) end

---Streams the export through zstd into the snapshot object `firebase`; returns the manifest record.
---@param snap rewind.snapshot.Snap
---@param fb rewind.env_firebase.Part
---@param opts {level?: integer}
---@return rewind.env_firebase.Record
function M.backup(snap, fb, opts) end

---Replaces the node with the export in `reader` (a verified snapshot reader, zstd) by PUT.
---@param fb rewind.env_firebase.Part
---@param reader rewind.Reader
function M.restore(fb, reader) end

---nil, or how the node now differs from the recorded export (by the sha256 of a fresh export).
---@param fb rewind.env_firebase.Part
---@param record rewind.env_firebase.Record
---@return string?
function M.check(fb, record) end

return M
