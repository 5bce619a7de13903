-- rewind.lock: a lease object in the target store, so two jobs on the same target never run at once.
--
--   key: <prefix>/locks/<name>.json (or locks/<name>.json without a prefix). The record names owner (the
--   procedure), host, pid (with the process's start time, boot id and pid namespace), a unique token,
--   acquired_at, renewed_at and expires_at.
--
-- Every change is a compare-and-swap on the object's version (store:create_if_absent, replace_if,
-- delete_if: S3/Azure ETags with If-None-Match / If-Match, the local store's flock-checked rename):
--   * acquire: create it; when it exists, read it. Ours (same token: a create whose answer was lost and
--     that the SDK sent again) counts as acquired. Expired, unreadable, or held by a process of this host
--     that is gone: replace it, conditionally on the version just read. Else: refused, naming the holder.
--   * renew: every ttl/3, replace it conditionally on our last version. A store error is retried (with
--     backoff) until the lease's own time runs out; a refused replace whose object still carries our
--     token was our own earlier attempt (answer lost): adopt its version and go on.
--   * lost: taken over (another token), removed, or not renewed before it expired. The run is aborted
--     (task.abort): its work and coroutines stop, its on_exit handlers run, it fails with "lost the lease
--     on <label>: ..." naming the new holder. l:check() (called by snapshot commits and prune's deletes)
--     raises the same way, and also checks the object itself.
--   * release: delete it conditionally on our version (on release(), error (lock.with), exit, Ctrl-C).
--
-- Lease time is counted on the holder's monotonic clock from the moment a write was sent, minus a margin
-- for clock skew between hosts (others compare `expires` with their own wall clock).

local json = require("rewind.json")
local time = require("rewind.time")
local env = require("rewind.env")
local task = require("rewind.task")
local log = require("rewind.log")

local M = {}

local Lock = {}
Lock.__index = Lock

local MIN_TTL = 3
-- Locks this run holds, by store URL and key (snapshot commits check the one of their prefix).
local held = {}

local function trim(prefix)
  return ((prefix or ""):gsub("^/+", ""):gsub("/+$", ""))
end

local function lock_key(name, prefix)
  if type(name) ~= "string" or name == "" or name:find("[/%c]") then
    error("lock name must be a non-empty name without '/', got " .. tostring(name), 3)
  end
  prefix = trim(prefix)
  if prefix == "" then return "locks/" .. name .. ".json" end
  return prefix .. "/locks/" .. name .. ".json"
end

local function token()
  return string.format("%s-%d-%x-%08x%08x", env.hostname(), env.pid(), math.floor(time.now() * 1000),
    math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

local function who(rec)
  return string.format("%s on %s (pid %s)", tostring(rec.owner), tostring(rec.host), tostring(rec.pid))
end

local function describe(label, rec)
  return string.format("%s is locked by %s since %s (lease expires %s)", label, who(rec),
    tostring(rec.acquired_at), tostring(rec.expires_at))
end

--- The lease record and its version, or nil when there is none. A store error raises: it never means
--- "no lease". A body that is not a lease record reads as { garbage = true }.
local function read(store, key)
  local body, version = store:get_versioned(key)
  if body == nil then return nil end
  local ok, rec = pcall(json.decode, body)
  if not ok or type(rec) ~= "table" then rec = { garbage = true } end
  return rec, version
end

local me_cache
local function me()
  me_cache = me_cache or env.process() or { pid = env.pid() }
  return me_cache
end

--- Whether the holder ran on this host (same kernel boot and pid namespace) and its process is gone.
local function holder_gone(rec)
  local self = me()
  if rec.host ~= env.hostname() or not rec.boot_id or rec.boot_id ~= self.boot_id then return false end
  if rec.pid_ns ~= self.pid_ns or type(rec.pid) ~= "number" then return false end
  local p = env.process(math.floor(rec.pid))
  if p == nil then return true end
  -- A reused pid: another process started since.
  return rec.pid_start ~= nil and p.start ~= nil and p.start ~= rec.pid_start
end

--- Why `rec` may be taken over now, or nil when it is in force.
local function takeover_reason(rec, now)
  if rec.garbage then return "it is not a lease record" end
  if type(rec.expires) ~= "number" then return "it has no expiry" end
  if rec.expires < now then return "it expired at " .. tostring(rec.expires_at) end
  if holder_gone(rec) then return "its process is gone (this host, pid " .. tostring(rec.pid) .. ")" end
  return nil
end

--- Why a lease that is not ours anymore was lost, from what is there now.
local function lost_to(rec)
  if rec == nil then return "it was removed (by `rewind run unlock force=true`, or by hand)" end
  if rec.garbage then return "it was overwritten with something that is not a lease" end
  return "it was taken over by " .. who(rec) .. " at " .. tostring(rec.acquired_at)
end

function Lock:_record(now)
  local p = me()
  return {
    owner = self.owner, host = env.hostname(), pid = p.pid, pid_start = p.start, boot_id = p.boot_id,
    pid_ns = p.pid_ns, token = self.token, acquired_at = self.acquired_at, renewed_at = time.format(now),
    expires_at = time.format(now + self.ttl), expires = now + self.ttl, ttl = self.ttl,
  }
end

--- Until when (monotonic) the lease is surely ours: its ttl from when its last write was sent, less a
--- margin for the clocks of other hosts.
function Lock:_deadline()
  return self.sent_at + self.ttl - math.min(2, self.ttl * 0.1)
end

function Lock:_lose(reason)
  if not self.lost then
    self.lost = "lost the lease on " .. self.label .. ": " .. reason
    self.held = false
    held[self.registry] = nil
    log.error(self.lost, { key = self.key })
  end
  task.abort(self.lost)
end

--- After the lease expired on our clock: the reason, naming whoever holds it now.
function Lock:_expired_reason(last_error)
  local reason = "it could not be renewed before it expired"
  if last_error then reason = reason .. " (last error: " .. last_error .. ")" end
  local ok, cur = pcall(read, self.store, self.key)
  if ok and cur and cur.token ~= self.token then reason = reason .. "; " .. lost_to(cur) end
  return reason
end

--- One renewal attempt: true when renewed, "retry" when an earlier attempt of ours turned out to have
--- landed (adopt its version and go again), else the reason the lease is lost. Store errors raise.
function Lock:_try_renew()
  local sent = time.monotonic()
  local v = self.store:replace_if(self.key, json.encode(self:_record(time.now())), self.version)
  if v then
    self.version, self.sent_at = v, sent
    return true
  end
  local cur, version = read(self.store, self.key)
  if cur and cur.token == self.token then
    self.version = version
    return "retry"
  end
  return lost_to(cur)
end

--- Renews the lease, retrying store errors until its time runs out; aborts the run when it is lost.
function Lock:_renew()
  local delay, last_error = 0.25, nil
  while self.held do
    local left = self:_deadline() - time.monotonic()
    if left <= 0 then return self:_lose(self:_expired_reason(last_error)) end
    local ok, res = pcall(task.timeout, left, self._try_renew, self)
    if not self.held then return end
    if ok and res == true then return end
    if ok and res ~= "retry" then return self:_lose(res) end
    if not ok then
      last_error = tostring(res):match("^[^\n]*")
      log.warn("could not renew the lease; retrying", { key = self.key, error = last_error,
        seconds_left = math.floor(left * 10) / 10 })
      task.sleep(math.min(delay, math.max(0.05, self:_deadline() - time.monotonic())))
      delay = math.min(delay * 2, math.max(0.25, self.ttl / 6))
    end
  end
end

--- Takes the lock or raises "<label> is locked by <owner> on <host> (pid N) since <time> (...)".
--- opts: ttl ("2m", at least 3 s), prefix, owner (default: "rewind"), label (name shown in errors).
function M.acquire(store, name, opts)
  opts = opts or {}
  local ttl = time.duration(opts.ttl or "2m")
  if ttl < MIN_TTL then
    require("rewind.errors").usage("the lease length (lock_ttl) must be at least " .. MIN_TTL .. "s, got " .. tostring(ttl) .. "s")
  end
  local key = lock_key(name, opts.prefix)
  local l = setmetatable({
    store = store, name = name, key = key, ttl = ttl, owner = opts.owner or "rewind", token = token(),
    acquired_at = time.format(time.now()), held = false, lost = false,
    label = opts.label or ((opts.prefix and trim(opts.prefix) ~= "") and (trim(opts.prefix) .. " (" .. name .. ")") or name),
    registry = tostring(store.url) .. "\n" .. key,
  }, Lock)
  for _ = 1, 10 do
    local sent = time.monotonic()
    local created, version = store:create_if_absent(key, json.encode(l:_record(time.now())))
    if created then
      l.version, l.sent_at = version, sent
      break
    end
    local cur, cur_version = read(store, key)
    if cur and cur.token == l.token then
      -- Our own create: its answer was lost and the store client sent it again.
      l.version, l.sent_at = cur_version, sent
      break
    elseif cur then
      local why = takeover_reason(cur, time.now())
      if not why then error(describe(l.label, cur), 2) end
      sent = time.monotonic()
      local v = store:replace_if(key, json.encode(l:_record(time.now())), cur_version)
      if v then
        log.warn("took over the lease of " .. l.label .. ": " .. why, { key = key, holder = who(cur) })
        l.version, l.sent_at = v, sent
        break
      end
    end
    -- Released or changed meanwhile: look again.
  end
  if not l.version then error("could not acquire the lease " .. key .. " (it keeps changing hands)", 2) end
  log.debug("acquired the lease", { key = key, ttl = ttl })
  l.held = true
  held[l.registry] = l
  task.on_exit(function() l:release() end)
  l.renewer = task.spawn(function()
    while l.held do
      task.sleep(l.ttl / 3)
      if not l.held then break end
      l:_renew()
    end
  end)
  return l
end

--- Raises (and stops the run) if the lease was lost: taken over, removed, or past its time. Reads the
--- lease to be sure; when the store cannot be reached, a lease still within its time is ours.
function Lock:check()
  if self.lost then task.abort(self.lost) end
  if not self.held then error("the lease on " .. self.label .. " was already released", 2) end
  if time.monotonic() >= self:_deadline() then self:_lose(self:_expired_reason()) end
  local ok, cur = pcall(read, self.store, self.key)
  if not ok then
    log.warn("could not read the lease to check it; it is still within its time", { key = self.key,
      error = tostring(cur):match("^[^\n]*") })
  elseif not cur or cur.token ~= self.token then
    self:_lose(lost_to(cur))
  end
  return true
end

--- Releases the lock: deletes the lease if it is still ours. Safe to call more than once; a store error
--- is logged (the lease then expires on its own).
function Lock:release()
  if not self.held then return false end
  self.held = false
  held[self.registry] = nil
  if self.renewer then self.renewer:abort() end
  local ok, res = pcall(function()
    for _ = 1, 3 do
      if self.store:delete_if(self.key, self.version) then
        log.debug("released the lease", { key = self.key })
        return true
      end
      -- Changed: an interrupted renewal of ours may have landed; delete only what is still ours.
      local cur, version = read(self.store, self.key)
      if not cur or cur.token ~= self.token then return false end
      self.version = version
    end
    return false
  end)
  if not ok then
    log.warn("could not release the lease; it expires on its own", { key = self.key,
      error = tostring(res):match("^[^\n]*") })
    return false
  end
  return res
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
  o.prefix, o.label = prefix, o.label or trim(prefix)
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

--- When this run holds the lease of `prefix` in `store`, checks it (l:check(): raises and stops the run
--- if it was lost); else does nothing. Snapshot commits call it, so a job that lost its lease commits no
--- manifest.
function M.check_target(store, prefix)
  local l = held[tostring(store.url) .. "\n" .. lock_key("target", prefix)]
  if l then l:check() end
end

--- The current lease record of a lock and its version, or nil. opts: prefix.
function M.holder(store, name, opts)
  opts = opts or {}
  return read(store, lock_key(name, opts.prefix))
end

--- What a lease says about its holder: the record plus `expired` and `process` ("running", "gone" or
--- "unknown" for another host), or nil when there is none.
function M.inspect(store, name, opts)
  local rec, version = M.holder(store, name, opts)
  if not rec then return nil end
  local info = {}
  for k, v in pairs(rec) do info[k] = v end
  info.key, info.version = lock_key(name, (opts or {}).prefix), version
  info.expired = type(rec.expires) ~= "number" or rec.expires < time.now()
  if rec.garbage then
    info.process = "unknown"
  elseif holder_gone(rec) then
    info.process = "gone"
  elseif rec.host == env.hostname() and rec.boot_id == me().boot_id and rec.pid_ns == me().pid_ns then
    info.process = "running"
  else
    info.process = "unknown"
  end
  return info
end

--- Removes a lease whoever holds it (its holder, if it runs, stops at its next renewal: it lost the
--- lease). Returns the record removed, or nil when there was none.
function M.remove(store, name, opts)
  local key = lock_key(name, (opts or {}).prefix)
  for _ = 1, 10 do
    local rec, version = read(store, key)
    if not rec then return nil end
    if store:delete_if(key, version) then return rec end
  end
  error("could not remove the lease " .. key .. " (it keeps changing)", 2)
end

return M
