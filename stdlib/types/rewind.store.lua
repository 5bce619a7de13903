---@meta
-- rewind.store: object stores with one interface. `file:///path` or a plain path (the local default),
-- `s3://bucket/prefix` (AWS S3 and S3-compatible servers), `az://container/prefix` (Azure Blob Storage).
-- Keys are relative to the store's prefix, use '/', and may not contain '.' or '..' components.
-- Bytes stream in Rust with bounded memory; writes are atomic (nothing partial is ever visible).

---@class rewind.store.OpenOpts
---@field region? string           S3 region (else AWS_REGION / the profile's region)
---@field endpoint? string         S3-compatible endpoint URL (else AWS_ENDPOINT_URL), or the Azure blob endpoint
---@field path_style? boolean      S3 path-style addressing (needed by most S3-compatible servers)
---@field profile? string          AWS profile name (else AWS_PROFILE)
---@field sse? "AES256"|"aws:kms"  S3 server-side encryption
---@field kms_key_id? string       KMS key for sse="aws:kms"
---@field part_size? integer       multipart part size in bytes (S3/Azure; default 8 MiB, at least 5 MiB)
---@field concurrency? integer     parts (or ranged GETs, or S3 part copies) in flight (default 4)
---@field copy_threshold? integer  S3: copy larger sources as a multipart copy (default 256 MiB, at most 5 GiB)
---@field copy_part_size? integer  S3: multipart copy part size (default 64 MiB, 5 MiB to 5 GiB)
---@field account? string          Azure storage account (else AZURE_STORAGE_ACCOUNT)
---@field access_key? string       Azure account key (else AZURE_STORAGE_KEY); a secret
---@field sas_token? string        Azure SAS token (else AZURE_STORAGE_SAS_TOKEN); a secret
---@field connection_string? string Azure connection string (else AZURE_STORAGE_CONNECTION_STRING); a secret
---@field use_emulator? boolean    Azure: talk to Azurite with its well-known account
---@field recipients? string       age X25519 public keys (age1..., comma-separated, or a file of them): every object written is encrypted (else REWIND_RECIPIENTS)
---@field identity? string         file of age identities (AGE-SECRET-KEY-1...) that decrypt what is read (else REWIND_IDENTITY)
---@field passphrase? string       age passphrase (scrypt): encrypts writes when there are no recipients, decrypts reads (else REWIND_PASSPHRASE); a secret

---@class rewind.store.Object
---@field key string        relative to the store's prefix
---@field size integer
---@field mtime? number     seconds since the epoch
---@field etag? string

---@class rewind.store.PutResult
---@field key string
---@field size integer
---@field etag? string

---@class rewind.store.CasResult
---@field sha256 string     sha256 of the original (uncompressed) bytes
---@field key string        `<prefix>/<aa>/<sha256>`
---@field new boolean       false when the object already existed (nothing was uploaded)
---@field size integer      original size
---@field stored_size? integer  bytes stored (after compression), when uploaded
---@field compression string

---An open store.
---@class rewind.Store
---@field url string
---@field encrypted boolean  whether what is written is age-encrypted (opened with recipients or a passphrase)
local Store = {}

---Stores a string or streams a reader into `key` (atomic).
---@param key string
---@param data string|rewind.Reader
---@param opts? table
---@return rewind.store.PutResult
function Store:put(key, data, opts) end

---Uploads a local file.
---@param key string
---@param path string
---@return rewind.store.PutResult
function Store:put_file(key, path) end

---Reads a whole (small) object into a string.
---@param key string
---@return string
function Store:get(key) end

---Downloads an object into a local file (atomic).
---@param key string
---@param path string
---@return {key: string, path: string, size: integer}
function Store:get_file(key, path) end

---A reader over an object or a byte range of it.
---@param key string
---@param opts? {offset?: integer, length?: integer}
---@return rewind.Reader
function Store:reader(key, opts) end

---A writer into `key`; `close()` commits it and returns `{key, bytes, etag}`, an unclosed writer is aborted.
---@param key string
---@param opts? table
---@return rewind.Writer
function Store:writer(key, opts) end

---Iterates objects under a key prefix in key order, fetched page by page.
---@param prefix? string
---@return fun(): rewind.store.Object?
function Store:list(prefix) end

---Metadata of one object, or nil.
---@param key string
---@return rewind.store.Object?
function Store:head(key) end

---@param key string
---@return boolean
function Store:exists(key) end

---Deletes one key or a list of keys (batched: S3 1000, Azure 256 keys per request); missing keys are
---not an error. S3 counts every key requested, Azure only those that existed.
---@param keys string|string[]
---@return integer deleted
function Store:delete(keys) end

---Copies an object (server-side where possible; S3 sources above `copy_threshold` as a multipart copy).
---@param from string
---@param to string
function Store:copy(from, to) end

---@class rewind.store.LeftoverResult
---@field count integer     temp files found (and removed, with remove=true)
---@field bytes integer
---@field keys string[]     their keys, the temp file's name last
---@field removed boolean

---A small object's bytes and its version (an opaque tag that changes with every write: the S3/Azure
---ETag, the local store's sha256 of the content), or nil when the key does not exist. Any other failure
---raises: it never reads as "absent".
---@param key string
---@return string? body
---@return string? version
function Store:get_versioned(key) end

---Writes `data` only if `key` does not exist (atomic conditional create: S3/Azure `If-None-Match: *`,
---the local store's link(2)). Returns true and the new version, or false when an object existed.
---With `idempotent = true`, an existing object holding exactly `data` counts as created: a create whose
---answer was lost and that the store client sent again finds its own object. Use it when equal bytes
---mean the same writer (a unique token in the body) or the same result (a manifest).
---@param key string
---@param data string
---@param opts? {idempotent?: boolean}
---@return boolean created
---@return string? version
function Store:create_if_absent(key, data, opts) end

---Replaces `key` with `data` only if its version is still `version` (atomic compare-and-swap: S3/Azure
---`If-Match`, the local store's flock-checked rename). Returns the new version, or false when the object
---changed or is gone (store errors raise). `idempotent` as for create_if_absent.
---@param key string
---@param data string
---@param version string
---@param opts? {idempotent?: boolean}
---@return string|false
function Store:replace_if(key, data, version, opts) end

---Deletes `key` only if its version is still `version` (S3 `If-Match`; Azure: a read of the ETag just
---before the delete). True when that version is gone (deleted now, or already absent), false when
---another version is there (left alone).
---@param key string
---@param version string
---@return boolean
function Store:delete_if(key, version) end

---Temp files (`.rewind-tmp-*`) that writers killed mid-write left under `prefix`, last modified more
---than `older_than` seconds ago; removed with `remove = true`. Only the local store has any (S3 and
---Azure uploads are invisible until complete); elsewhere the count is 0.
---@param prefix string
---@param older_than number  seconds
---@param opts? {remove?: boolean}
---@return rewind.store.LeftoverResult
function Store:leftovers(prefix, older_than, opts) end

---Content-addressed put under `<prefix>/<aa>/<sha256><suffix>`; skips the upload when the object exists.
---With `sha256` known beforehand, the key is checked first and the input (a reader, or a function
---returning one: called only when the object is absent) streams through a check of its sha256 (and
---`size`) into the store, with no spool file; a mismatch fails and stores nothing.
---@param input string|rewind.Reader|{file: string}|fun(): rewind.Reader
---@param opts? {prefix?: string, compression?: "none"|"gzip"|"zstd", level?: integer, suffix?: string, sha256?: string, size?: integer}
---@return rewind.store.CasResult
function Store:put_cas(input, opts) end

local M = {}

---Opens a store. nil opens the default: `REWIND_STORE`, else the config file's `store`, else
---`$XDG_DATA_HOME/rewind/store` (`~/.local/share/rewind/store`).
---@param url? string
---@param opts? rewind.store.OpenOpts
---@return rewind.Store
function M.open(url, opts) end

---The default store URL (see `open`).
---@return string
function M.default_url() end

return M
