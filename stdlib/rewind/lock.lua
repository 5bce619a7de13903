-- rewind.lock: a lease object in the target store, so two jobs on the same target never run at once.
--
--   key: <prefix>/locks/<name>.json (or locks/<name>.json without a prefix), created with the store's
--   conditional create; it names owner (procedure), host, pid, acquired_at and expires_at.
--   While held it is renewed from a background task every ttl/3. After expiry another job may take it
--   over: delete + conditional create, then a re-read after a short pause to confirm (the store has no
--   conditional replace). It is released by l:release(), on error (lock.with), on exit and on Ctrl-C
--   (task.on_exit).

local json = require("rewind.json")
local time = require("rewind.time")
local env = require("rewind.env")
local task = require("rewind.task")
local log = require("rewind.log")

local M = {}

local Lock = {}
Lock.__index = Lock

local function lock_key(name, prefix)
  if type(name) ~= "string" or name == "" then error("lock name must be a non-empty string", 3) end
  prefix = (prefix or ""):gsub("^/+", ""):gsub("/+$", "")
  if prefix == "" then return "locks/" .. name .. ".json" end
  return prefix .. "/locks/" .. name .. ".json"
end

local function token()
  return string.format("%s-%d-%x-%x", env.hostname(), env.pid(), math.floor(time.now() * 1000), math.random(0, 0x7fffffff))
end

local function describe(label, rec)
  return string.format("%s is locked by %s on %s (pid %s) since %s (lease expires %s)", label,
    tostring(rec.owner), tostring(rec.host), tostring(rec.pid), tostring(rec.acquired_at), tostring(rec.expires_at))
end

local function read(store, key)
  local ok, text = pcall(store.get, store, key)
  if not ok then return nil end
  local ok2, rec = pcall(json.decode, text)
  if not ok2 or type(rec) ~= "table" then return { garbage = true } end
  return rec
end

function Lock:_record(now)
  return {
    owner = self.owner, host = env.hostname(), pid = env.pid(), token = self.token,
    acquired_at = self.acquired_at, renewed_at = time.format(now),
    expires_at = time.format(now + self.ttl), expires = now + self.ttl,
  }
end

--- Takes the lock or raises "<name> is locked by <owner> on <host> (pid N) since <time>".
--- opts: ttl ("2m"), prefix, owner (default: the running procedure), label (name shown in errors).
function M.acquire(store, name, opts)
  opts = opts or {}
  local ttl = time.duration(opts.ttl or "2m")
  if ttl < 3 then error("lock ttl must be at least 3 seconds", 2) end
  local now = time.now()
  local l = setmetatable({
    store = store, name = name, key = lock_key(name, opts.prefix), ttl = ttl,
    owner = opts.owner or "rewind", token = token(), acquired_at = time.format(now),
    held = false, lost = false, busy = false,
  }, Lock)
  local label = opts.label or ((opts.prefix and opts.prefix ~= "") and (opts.prefix .. " (" .. name .. ")") or name)
  local acquired = false
  for _ = 1, 4 do
    now = time.now()
    if store:create_if_absent(l.key, json.encode(l:_record(now))) then
      acquired = true
      break
    end
    local cur = read(store, l.key)
    if cur == nil then
      -- released between our attempt and the read: try again
    elseif cur.garbage or (tonumber(cur.expires) or 0) < now then
      log.warn("taking over an expired lock", { key = l.key, holder = cur.owner, host = cur.host, pid = cur.pid, expired = cur.expires_at })
      store:delete(l.key)
      if store:create_if_absent(l.key, json.encode(l:_record(time.now()))) then
        -- Another job may have deleted and re-created in between: confirm after a pause.
        task.sleep(0.5)
        local again = read(store, l.key)
        if again and again.token == l.token then acquired = true break end
        if again and not again.garbage then error(describe(label, again), 2) end
      end
    else
      error(describe(label, cur), 2)
    end
  end
  if not acquired then error("could not acquire lock " .. l.key .. " (it keeps changing hands)", 2) end
  l.held = true
  task.on_exit(function() l:release() end)
  l.renewer = task.spawn(function()
    while l.held do
      task.sleep(l.ttl / 3)
      if not l.held then break end
      l.busy = true
      local ok, err = pcall(function()
        local cur = read(store, l.key)
        if not l.held then return end
        if not cur or cur.token ~= l.token then
          l.lost = true
          log.error("lost the lock", { key = l.key, holder = cur and cur.owner, host = cur and cur.host })
          return
        end
        store:put(l.key, json.encode(l:_record(time.now())))
      end)
      l.busy = false
      if not ok then log.warn("could not renew the lock", { key = l.key, error = tostring(err) }) end
      if l.lost then break end
    end
  end)
  return l
end

--- Raises if the lease was lost (taken over after it expired without renewal).
function Lock:check()
  if self.lost then error("lost the lock " .. self.key .. " (it expired and was taken over)", 2) end
  return true
end

--- Releases the lock (deletes the lease if it is still ours). Safe to call more than once.
function Lock:release()
  if not self.held then return false end
  self.held = false
  while self.busy do task.sleep(0.02) end
  if self.lost then return false end
  local cur = read(self.store, self.key)
  if cur and cur.token == self.token then self.store:delete(self.key) end
  return true
end

--- Runs fn(lock) while holding the lock; releases it afterwards, also on error (then re-raises).
function M.with(store, name, fn, opts)
  local l = M.acquire(store, name, opts)
  local res = table.pack(pcall(fn, l))
  l:release()
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

local function target_opts(prefix, opts)
  if type(prefix) ~= "string" or prefix:gsub("/", "") == "" then
    error("the lock of a snapshot prefix needs a non-empty prefix", 3)
  end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.prefix, o.label = prefix, o.label or prefix
  return o
end

--- The lock of a snapshot prefix, `<prefix>/locks/target.json`. Every bundled procedure that writes,
--- restores from or prunes the snapshots under a prefix takes this one, so no two of them run at once on
--- it (a prune never deletes what a restore is reading). opts as for acquire; label defaults to prefix.
function M.target(store, prefix, opts)
  return M.acquire(store, "target", target_opts(prefix, opts))
end

--- Runs fn(lock) while holding the lock of a snapshot prefix (see M.target); released also on error.
function M.with_target(store, prefix, fn, opts)
  return M.with(store, "target", fn, target_opts(prefix, opts))
end

--- The current lease record of a lock, or nil.
function M.holder(store, name, opts)
  opts = opts or {}
  return read(store, lock_key(name, opts.prefix))
end

return M
