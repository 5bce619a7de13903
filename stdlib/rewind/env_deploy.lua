-- rewind.env_deploy: what an environment runs. The configuration directory (config-local) as a tar
-- with modes and symlinks kept, swapped in atomically on restore; the deployment checkout's git
-- commit, branch, remote and status; the container image tags in use (a list, a compose file's
-- image: lines, or a command's output).
local env = require("rewind.env")
local exec = require("rewind.exec")
local fs = require("rewind.fs")
local json = require("rewind.json")
local log = require("rewind.log")
local tar = require("rewind.tar")

local M = {}

M.TAR_EXT = "tar.zst"

--- Streams the configuration directory into the snapshot object `config`; returns the record.
function M.backup_config(snap, cfg, opts)
  local st = fs.stat(cfg.dir)
  if not st or st.type ~= "dir" then error("config.dir " .. cfg.dir .. " is not a directory", 0) end
  local w = snap:writer("config", M.TAR_EXT)
  local t = tar.create({ from = cfg.dir, to = w, compression = "zstd", level = opts.level, flat = true,
    exclude = cfg.exclude })
  return { dir = cfg.dir, object = "config", files = t.files, symlinks = t.symlinks, bytes = t.bytes_in }
end

--- Extracts the configuration beside `dir` and exchanges it with the live one in one step; the old
--- tree is removed after the swap. A crash leaves the old or the new tree, and a named leftover.
function M.restore_config(dir, reader)
  dir = dir:gsub("/+$", "")
  local parent = dir:match("^(.*)/[^/]+$") or "."
  if parent == "" then parent = "/" end
  fs.mkdir(parent)
  local tmp = string.format("%s.rewind-restore-%d", dir, env.pid())
  fs.remove(tmp, { recursive = true })
  fs.mkdir(tmp)
  local ok, err = pcall(tar.extract, { from = reader, to = tmp })
  if not ok then
    fs.remove(tmp, { recursive = true })
    error(err, 0)
  end
  if fs.exists(dir) then
    fs.swap(tmp, dir)
    fs.remove(tmp, { recursive = true })
  else
    fs.rename(tmp, dir)
  end
end

--- nil, or how the restored configuration directory differs from the record (its file count; the
--- bytes were checked against the object's sha256 while they streamed).
function M.check_config(dir, rec)
  local files = 0
  for e in fs.walk(dir) do
    if e.type == "file" then files = files + 1 end
  end
  if rec.files and files ~= rec.files then
    return string.format("config directory %s holds %d files after the restore, the backup had %d", dir, files, rec.files)
  end
  return nil
end

--- A remote URL without credentials (https://user:token@host/... → https://host/...).
function M.public_url(url)
  if not url then return nil end
  return (url:gsub("^(%a[%w+.-]*://)[^/@]*@", "%1"))
end

local function git(dir, ...)
  local args = { "git", "-C", dir, ... }
  args.check = false
  local r = exec.run(args)
  if not r.ok then return nil, r.stderr end
  return (r.stdout:gsub("%s+$", ""))
end

--- {dir, commit, branch, remote, dirty, status} of a git checkout.
function M.git_info(dir)
  local commit, err = git(dir, "rev-parse", "HEAD")
  if not commit then error("git.dir " .. dir .. " is not a git checkout with a commit: " .. tostring(err), 0) end
  local branch = git(dir, "symbolic-ref", "--short", "-q", "HEAD")
  local remote = git(dir, "remote", "get-url", "origin")
  local status = git(dir, "status", "--porcelain") or ""
  local lines = {}
  for l in status:gmatch("[^\n]+") do lines[#lines + 1] = l end
  local info = { dir = dir, commit = commit, branch = branch ~= "" and branch or nil,
    remote = M.public_url(remote ~= "" and remote or nil), dirty = #lines > 0, status = lines }
  if info.dirty then
    log.warn("the deployment checkout has uncommitted changes; the recorded commit does not describe them",
      { dir = dir, changed = #lines })
  end
  return info
end

--- The image references a compose file names (its `image:` lines).
function M.compose_images(path)
  local out = {}
  for line in fs.read(path):gmatch("[^\n]+") do
    local img = line:match("^%s*image:%s*(.-)%s*$")
    if img and img ~= "" then
      img = img:gsub("^[\"'](.*)[\"']$", "%1")
      out[#out + 1] = img
    end
  end
  return out
end

--- The images in use, from the configured source.
function M.images(dep)
  if dep.images then return dep.images end
  if dep.compose_file then return M.compose_images(dep.compose_file) end
  if dep.images_command then
    local r = exec.run({ dep.images_command, shell = true, timeout = "5m" })
    local out = {}
    for l in r.stdout:gmatch("[^\n]+") do
      l = l:match("^%s*(.-)%s*$")
      if l ~= "" then out[#out + 1] = l end
    end
    return out
  end
  return nil
end

--- The deployment record (stored as the small object `deployment` too).
function M.backup_deployment(snap, dep)
  local rec = {}
  if dep.git_dir then rec.git = M.git_info(dep.git_dir) end
  rec.images = M.images(dep)
  snap:put("deployment", "json", json.encode(rec))
  rec.object = "deployment"
  return rec
end

--- Moves the checkout to the recorded commit (refusing a dirty tree unless force).
function M.checkout(dir, rec, force)
  local now = M.git_info(dir)
  if now.dirty and not force then
    error("git checkout " .. dir .. " has uncommitted changes; commit them or pass force=true", 0)
  end
  local ok, err
  if force then
    ok, err = git(dir, "checkout", "--detach", "--quiet", "--force", rec.commit)
  else
    ok, err = git(dir, "checkout", "--detach", "--quiet", rec.commit)
  end
  if not ok then error("could not check out " .. rec.commit .. " in " .. dir .. ": " .. tostring(err), 0) end
  local head = git(dir, "rev-parse", "HEAD")
  if head ~= rec.commit then error("git checkout " .. dir .. " is at " .. tostring(head) .. " after checking out " .. rec.commit, 0) end
end

--- Runs the deploy command with the recorded images and commit in its environment.
function M.deploy(command, rec)
  local images = table.concat(rec.images or {}, "\n")
  exec.run({ command, shell = true, timeout = "1h",
    env = { REWIND_IMAGES = images, REWIND_GIT_COMMIT = rec.git and rec.git.commit or "" } })
end

return M
