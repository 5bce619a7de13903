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
---@field workers? integer      zstd workers (default: CPUs)

--- Streams an archive into a writer or file. Returns counts and bytes, and `object` = what the writer's
--- close() reported (key, size, sha256, ...).
---@param opts rewind.TarCreateOpts
---@return {files: integer, dirs: integer, symlinks: integer, skipped: integer, bytes_in: integer, bytes_out: integer, object: table}
function M.create(opts) end

--- Extracts a reader or file into `to` (best a new or empty directory), never writing through a symlink:
--- every entry is created beneath `to` through directories opened without following one (openat2
--- RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or an O_NOFOLLOW walk). Refused, naming the entry: absolute paths,
--- `..`, an entry under a symlink, a name already taken (an entry never replaces another), device files,
--- fifos, sparse files, a hard link to anything but a file extracted inside `to`, and a stream that ends
--- early ("it is truncated"). Symlinks are restored as they are; those leading outside `to` (decided
--- lexically through the tree's own links, dangling or not) are counted in `symlinks_outside` and the
--- first 20 listed in `outside`, or refused with `symlinks = "inside"`. Compression is detected from the
--- magic bytes. With sha256/size, the input is verified to its end.
---@param opts {from: string|rewind.Reader, to: string, sha256?: string, size?: integer, symlinks?: "keep"|"inside"}
---@return {files: integer, dirs: integer, symlinks: integer, hardlinks: integer, bytes: integer, compressed_bytes: integer, symlinks_outside: integer, outside: {path: string, target: string}[]}
function M.extract(opts) end

--- Lists the entries of an archive without extracting.
---@param from string|rewind.Reader
---@return {path: string, type: string, size: integer, mode: integer, mtime: integer, link?: string}[]
function M.list(from) end

return M
