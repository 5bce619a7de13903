---@meta
-- rewind.snapshot: objects at <prefix>/<YYYYMMDD>/<name>_<HHMMSS>.<ext> (UTC), manifest written last at
-- <prefix>/<YYYYMMDD>/manifest_<HHMMSS>.json; id = YYYYMMDD-HHMMSS. No manifest = incomplete. A manifest
-- is checked before use (`check`); an invalid one is listed apart, refused by `open`, never deleted from.
-- Objects are read where the manifest lies: a snapshot directory copied to another prefix belongs to it.
local M = {}

---@class rewind.snapshot.Object
---@field name string
---@field key string
---@field size integer
---@field sha256? string      of the bytes written; absent with integrity "age"
---@field ext string
---@field integrity? "age"     an indexed archive in an encrypted store: age and the index's sha256s check it

---@class rewind.snapshot.Manifest
---@field format string      "rewind.snapshot/1"
---@field id string
---@field prefix string
---@field procedure? string
---@field target? string
---@field host string
---@field started_at string  RFC 3339
---@field finished_at string RFC 3339
---@field params table       without secrets
---@field tags table
---@field rewind_version string
---@field objects rewind.snapshot.Object[]
---@field manifest_key? string  where it was read (set by check)
---@field moved_from? string    the prefix it was written under, when it now lies under another one

---An invalid manifest: its id (from its key), its key and why.
---@class rewind.snapshot.Invalid
---@field id string
---@field key string
---@field error string

---A snapshot being written.
---@class rewind.snapshot.Snap
---@field id string
---@field started_at string
local Snap = {}
---Stores a string or streams a reader as one object; returns its manifest entry.
---@param name string
---@param ext string
---@param data string|rewind.Reader
---@return rewind.snapshot.Object
function Snap:put(name, ext, data) end
---A writer for one object; size and sha256 are recorded when it is closed (or committed by a primitive).
---`opts.indexed`: an archive whose files an index checks; in an encrypted store it is not hashed as a
---whole (its entry gets integrity "age" instead of a sha256).
---@param name string
---@param ext string
---@param opts? {indexed?: boolean}
---@return rewind.Writer
function Snap:writer(name, ext, opts) end
---Writes the manifest last and returns it; `extra` fields are added to it.
---@param extra? table
---@return rewind.snapshot.Manifest
function Snap:commit(extra) end
---Deletes what this (uncommitted) snapshot wrote; returns how many objects.
---@return integer
function Snap:abort() end

---A complete snapshot opened for reading.
---@class rewind.snapshot.Opened
---@field id string
---@field manifest rewind.snapshot.Manifest
local Opened = {}
---A reader over one object that fails at its end if the size or sha256 differ from the manifest.
---@param name string
---@return rewind.Reader
function Opened:reader(name) end
---One object as a verified string.
---@param name string
---@return string
function Opened:get(name) end
---Re-reads every object and checks size and sha256.
---@return {ok: boolean, id: string, objects: {name: string, key: string, ok: boolean, error?: string}[]}
function Opened:verify() end
---Verifies every object and raises "snapshot ID failed verification, nothing was changed: ..." naming
---each bad one, unless all are intact (then returns verify's result).
---@return {ok: boolean, id: string, objects: {name: string, key: string, ok: boolean, error?: string}[]}
function Opened:verify_or_fail() end
---@param name string
---@return rewind.snapshot.Object
function Opened:object(name) end

---Starts a snapshot.
---@param store rewind.Store
---@param opts {prefix: string, procedure?: string, target?: string, params?: table, tags?: table}
---@return rewind.snapshot.Snap
function M.begin(store, opts) end

---Valid snapshots' manifests under prefix, oldest first; second, the invalid ones, oldest first.
---@param store rewind.Store
---@param prefix string
---@return rewind.snapshot.Manifest[] valid
---@return rewind.snapshot.Invalid[] invalid
function M.list(store, prefix) end

---Checks a decoded manifest found at `key`: JSON object of this format, the id its key names, a plain
---prefix, every object `<prefix>/<YYYYMMDD>/<name>_<HHMMSS>.<ext>` with a plain name and ext, a size and a
---sha256. Returns it ready for use (`manifest_key` set, objects' keys placed in the manifest's own
---directory, `moved_from` when it was written under another prefix), or nil and why it is invalid.
---@param m any
---@param key string
---@return rewind.snapshot.Manifest? manifest
---@return string? why
function M.check(m, key) end

---Decodes and checks a manifest's text (see `check`).
---@param body string
---@param key string
---@return rewind.snapshot.Manifest? manifest
---@return string? why
function M.parse(body, key) end

---The id a manifest key names (YYYYMMDD-HHMMSS), or the key itself when it names none.
---@param key string
---@return string
function M.key_id(key) end

---The keys deleting a snapshot may touch: its manifest's first, then its objects', each checked to lie in
---the manifest's own directory; nil and why otherwise.
---@param m rewind.snapshot.Manifest
---@return string[]? keys
---@return string? why
function M.own_keys(m) end

---Groups of objects without a manifest.
---@param store rewind.Store
---@param prefix string
---@return {id: string, keys: string[], started_at: string}[]
function M.incomplete(store, prefix) end

---One listing pass: the manifest objects (not read) and the incomplete snapshots.
---`opts.on_manifest(obj)` is called for each manifest object as its listing page arrives.
---@param store rewind.Store
---@param prefix string
---@param opts? {on_manifest: fun(obj: {key: string, size: integer, etag: string?, mtime: number?})?}
---@return {manifest_objects: {key: string, size: integer, etag: string?, mtime: number?}[], incomplete: {id: string, keys: string[], started_at: string}[]}
function M.scan(store, prefix, opts) end

---Reads and checks one manifest object (see `check`): the manifest, or nil and why it is invalid; raises
---when the read itself fails.
---@param store rewind.Store
---@param key string
---@return rewind.snapshot.Manifest? manifest
---@return string? why
function M.read_manifest(store, key) end

---The manifest of the newest snapshot under prefix, reading only that one (one listing, one read): nil
---when there is no complete snapshot; nil and why when its manifest is invalid (`latest` reads them all).
---@param store rewind.Store
---@param prefix string
---@return rewind.snapshot.Manifest? manifest
---@return string? why
function M.newest_manifest(store, prefix) end

---The newest valid snapshot's manifest, or nil when there is none; raises when the newest snapshot's
---manifest is invalid.
---@param store rewind.Store
---@param prefix string
---@return rewind.snapshot.Manifest?
function M.latest(store, prefix) end

---Opens a valid snapshot (newest when id is nil); an incomplete one, or one whose manifest is invalid, is
---refused, and so is "the newest" when the newest manifest is invalid.
---@param store rewind.Store
---@param prefix string
---@param id? string
---@return rewind.snapshot.Opened
function M.open(store, prefix, id) end

---Deletes a snapshot: manifest first, then its objects (also removes an incomplete one).
---@param store rewind.Store
---@param prefix string
---@param id string
---@return {id: string, deleted: integer}
function M.delete(store, prefix, id) end

return M
