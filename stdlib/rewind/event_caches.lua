-- rewind.event_caches: the two local caches of event-backup (source document 004's "hit cache" and "file
-- cache"), both in a directory of this machine, both durable (rewind.dedupe: one fsynced transaction per
-- write).
--  * hit cache: streams (source/label/sha256) known to be in the store. Two in-memory generations bound
--    what is held; the file keeps them across restarts until `ttl`. A stream is remembered only once it is
--    stored, so a crash never makes a stream that was only requested look done.
--  * failure cache: requests (not bytes) of streams that could not be backed up; retried first next time.
local dedupe = require("rewind.dedupe")
local time = require("rewind.time")
local env = require("rewind.env")
local hash = require("rewind.hash")
local fs = require("rewind.fs")

local M = {}

---The default cache directory of a procedure for one store+prefix: under $XDG_STATE_HOME (else
---~/.local/state)/rewind/<procedure>/<16 hex digits of sha256(store url + prefix)>.
function M.default_dir(procedure, store_url, prefix)
  local base = env.get("XDG_STATE_HOME") or ((env.get("HOME") or ".") .. "/.local/state")
  return string.format("%s/rewind/%s/%s", base, procedure, hash.sha256(store_url .. "\n" .. prefix):sub(1, 16))
end

---@param dir string
---@param opts {size: integer, ttl: number}  ttl in seconds
function M.hit_cache(dir, opts)
  fs.mkdir(dir)
  local file = dedupe.open(dir .. "/hit-cache.redb", { ttl = opts.ttl })
  local half = math.max(1, math.floor(opts.size / 2))
  local young, old, n, born = {}, {}, 0, time.monotonic()
  local unsaved = {}
  local hc = {}

  local function remember(key)
    if not young[key] then
      young[key] = true
      n = n + 1
      if n >= half or time.monotonic() - born > opts.ttl / 2 then
        old, young, n, born = young, {}, 0, time.monotonic()
      end
    end
  end

  ---Whether the stream is known to be stored (memory first, then the file).
  function hc.known(key)
    if young[key] or old[key] then
      return true
    end
    if file:seen(key) then
      remember(key)
      return true
    end
    return false
  end

  ---The stream is now in the store; saved to the file with the next `save`.
  function hc.stored(key)
    remember(key)
    unsaved[#unsaved + 1] = key
  end

  ---Writes what `stored` collected, in one transaction.
  function hc.save()
    if #unsaved > 0 then
      local keys = unsaved
      unsaved = {}
      file:add(keys)
    end
  end

  function hc.count()
    return file:count()
  end
  return hc
end

local function encode(req)
  return string.format("%s\t%s\t%s\t%s", req.source, req.label, req.sha256, tostring(req.size or ""))
end

local function decode(key)
  local source, label, sha, size = key:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$")
  if source then
    return { source = source, label = label, sha256 = sha, size = tonumber(size) }
  end
end

---@param dir string
function M.failure_cache(dir)
  fs.mkdir(dir)
  local file = dedupe.open(dir .. "/failure-cache.redb")
  local fc = { path = file:path() }
  ---Records a request; durable when this returns.
  function fc.add(req)
    file:add(encode(req))
  end
  function fc.remove(req)
    file:remove(encode(req))
  end
  ---Every cached request.
  function fc.list()
    local out = {}
    for _, k in ipairs(file:keys()) do
      out[#out + 1] = decode(k)
    end
    return out
  end
  function fc.count()
    return file:count()
  end
  return fc
end

return M
