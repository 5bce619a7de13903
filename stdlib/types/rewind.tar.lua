---@meta
-- rewind.tar: streaming tar archives (zstd by default: level 1, one worker per CPU), safe extraction.
local M = {}

---@class rewind.TarCreateOpts
---@field from string|string[]|rewind.Reader  directories/files, or a reader stored as one entry
---@field name? string          entry name when `from` is a reader
---@field size? integer         the reader's size if known (else it is spooled to a temp file first)
---@field mode? integer         the reader entry's mode (default 0644)
---@field to string|rewind.Writer  a writer (consumed and committed) or a local path
---@field compression? "zstd"|"gzip"|"none"
---@field level? integer
---@field exclude? string[]     globs matched against paths relative to each source directory
---@field flat? boolean         one directory: put its contents at the archive root
---@field workers? integer      zstd workers (default: CPUs; with index 0, compressing on the archiving thread, since every frame's end waits for the workers)
---@field index? string|rewind.Writer  indexed mode (zstd only, `from` paths only): the index's writer or path
---@field object? string        with index (required): the store key `to` writes, recorded in the index
---@field frame? integer        with index: cut a zstd frame at the first entry boundary after this many uncompressed bytes (default 1048576); a file at least this big gets a frame of its own
---@field parent? string|rewind.Reader  with index: the parent's index; a regular file whose size, mtime (s+ns), mode, inode and ctime (s+ns) equal its line there is not archived again, its line points where the parent's does
---@field progress? rewind.TarProgress  what the progress shows; without totals, a scan of `from` beside the archive gives them (files and bytes, and with `parent` the bytes of unchanged files, which count as done at once)

---@class rewind.TarProgress
---@field label? string         shown before the figures and as the JSON event's `label` (default "archiving PATH", "extracting NAME")
---@field files? integer        total regular files, when known ahead (a snapshot's manifest)
---@field bytes? integer        total bytes of their data

---@class rewind.TarIndexEntry
---@field path string           as in the archive ("." is a flat archive's root)
---@field type "dir"|"file"|"symlink"
---@field mode? integer         permission bits (dirs, files)
---@field mtime integer
---@field link? string          symlinks: the target
---@field size? integer         files: bytes
---@field mtime_ns? integer
---@field ino? integer
---@field ctime? integer
---@field ctime_ns? integer
---@field sha256? string        files: of the data
---@field obj? string           files: the object holding the file's tar entry (this one or an ancestor's)
---@field foff? integer         files: compressed offset of the zstd frame holding the entry
---@field flen? integer         files: compressed length of that frame
---@field fupos? integer        files: uncompressed offset of the frame's start in the tar stream
---@field tpos? integer         files: uncompressed offset of the entry's first header

--- Streams an archive into a writer or file. Returns counts and bytes, and `object` = what the writer's
--- close() reported (key, size, sha256, ...).
---
--- With `index`: the tar.zst is cut into zstd frames at entry boundaries (each entry wholly in one frame;
--- the whole is a plain tar.zst for `zstd -d | tar -x`, the end-of-archive blocks in a last frame), and
--- the index gets zstd-compressed JSON lines: {format = "rewind-index/1", object, frame}, then one
--- rewind.TarIndexEntry per entry in archive order. Each file is read once (sha256 while it streams).
--- Both writers are committed on success (the archive first) and aborted on error. Then `files` counts
--- every file of the tree, `bytes_in` only the bytes read, and the result also has files_new,
--- files_unchanged, bytes_new, bytes_unchanged, frames (including the last one), `referenced` (sorted
--- keys of the other objects unchanged files lie in) and `index` (what the index writer reported).
---@param opts rewind.TarCreateOpts
---@return {files: integer, dirs: integer, symlinks: integer, skipped: integer, bytes_in: integer, bytes_out: integer, object: table, files_new?: integer, files_unchanged?: integer, bytes_new?: integer, bytes_unchanged?: integer, frames?: integer, referenced?: string[], index?: table}
function M.create(opts) end

---@class rewind.TarComposeCounts
---@field files integer         files given so far
---@field dirs integer
---@field symlinks integer
---@field bytes integer         bytes of file data given
---@field ranges integer        ranged reads of the store
---@field stored_bytes integer  compressed bytes those reads gave
---@field done boolean          the stream ended well

--- A plain (uncompressed) tar stream of an indexed snapshot, for tar.extract or hashing: directories
--- and symlinks made from the index, files copied from the frames of the objects the index names
--- (keys relative to `base` when given). Consecutive files lying one after the other in one object are
--- read with one ranged read. Every file's name, size and sha256 are checked as it streams; a mismatch
--- fails the reader naming the path and both hashes. With `path`: that entry and what lies under it,
--- plus the directories leading to it; a path matching nothing is an error here. The counts fill in as
--- the reader is read.
---@param opts {store: rewind.Store, index: string|rewind.Reader, base?: string, path?: string}
---@return rewind.Reader reader
---@return rewind.TarComposeCounts counts
function M.compose(opts) end

--- The entries of an index (header line excluded), optionally only `path` and what lies under it and
--- those whose path matches `glob` (globset syntax; `*` matches `/` too). Also takes the index alone.
--- With `summary = true`, their counts instead (counted as the index streams: memory stays flat):
--- `{files, bytes, dirs, symlinks}`, bytes being the files' data (a restore's progress totals).
---@param opts {index: string|rewind.Reader, path?: string, glob?: string, summary?: boolean}|rewind.Reader
---@return rewind.TarIndexEntry[]|{files: integer, bytes: integer, dirs: integer, symlinks: integer} entries
---@return {format: string, object: string, frame: integer} header
function M.index(opts) end

--- Extracts a reader or file into `to` (best a new or empty directory), never writing through a symlink:
--- every entry is created beneath `to` through directories opened without following one (openat2
--- RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or an O_NOFOLLOW walk). Refused, naming the entry: absolute paths,
--- `..`, an entry under a symlink, a name already taken (an entry never replaces another), device files,
--- fifos, sparse files, a hard link to anything but a file extracted inside `to`, and a stream that ends
--- early ("it is truncated"). Symlinks are restored as they are; those leading outside `to` (decided
--- lexically through the tree's own links, dangling or not) are counted in `symlinks_outside` and the
--- first 20 listed in `outside`, or refused with `symlinks = "inside"`. Compression is detected from the
--- magic bytes. With sha256/size, the input is verified to its end. The progress counts the files
--- written and their bytes, of `progress.files`/`progress.bytes` when given (restores pass the manifest's).
---@param opts {from: string|rewind.Reader, to: string, sha256?: string, size?: integer, symlinks?: "keep"|"inside", progress?: rewind.TarProgress}
---@return {files: integer, dirs: integer, symlinks: integer, hardlinks: integer, bytes: integer, compressed_bytes: integer, symlinks_outside: integer, outside: {path: string, target: string}[]}
function M.extract(opts) end

--- Lists the entries of an archive without extracting.
---@param from string|rewind.Reader
---@return {path: string, type: string, size: integer, mode: integer, mtime: integer, link?: string}[]
function M.list(from) end

return M
