---@meta
-- rewind.env_deploy: what an environment runs: the configuration directory as a tar, the deployment checkout's git state, the container images in use.

---The configuration directory part (config-local).
---@class rewind.env_deploy.ConfigPart
---@field dir string
---@field exclude? string[]  globs left out of the tar

---The deployment part: a git checkout and/or one source of the images in use.
---@class rewind.env_deploy.DeploymentPart
---@field git_dir? string         deployment git checkout
---@field images? string[]        images in use (name:tag), as given
---@field compose_file? string    compose file whose image: lines name the images
---@field images_command? string  shell command printing the images, one per line

---The manifest record of the configuration directory.
---@class rewind.env_deploy.ConfigRecord
---@field dir string
---@field object string     "config"
---@field files integer
---@field symlinks integer
---@field bytes integer     bytes of the files before compression

---The state of a git checkout.
---@class rewind.env_deploy.GitInfo
---@field dir string
---@field commit string     HEAD's commit
---@field branch? string    nil when detached
---@field remote? string    origin's URL without credentials
---@field dirty boolean     uncommitted changes
---@field status string[]   `git status --porcelain` lines

---The manifest record of the deployment (also stored as the object `deployment`, JSON).
---@class rewind.env_deploy.DeploymentRecord
---@field git? rewind.env_deploy.GitInfo
---@field images? string[]
---@field object string     "deployment"

local M = {}

---Extension of the configuration tar.
---@type string
M.TAR_EXT = "tar.zst"

---Streams the configuration directory (modes and symlinks kept, cfg.exclude left out) as a tar into the
---snapshot object `config`; returns the record. Raises when cfg.dir is not a directory.
---@param snap rewind.snapshot.Snap
---@param cfg rewind.env_deploy.ConfigPart
---@param opts {level?: integer}
---@return rewind.env_deploy.ConfigRecord
function M.backup_config(snap, cfg, opts) end

---Extracts the configuration beside `dir` and exchanges it with the live one in one step (fs.swap); the
---old tree is removed after the swap. A crash leaves the old or the new tree, and a named leftover.
---@param dir string
---@param reader rewind.Reader the tar (a verified snapshot reader)
function M.restore_config(dir, reader) end

---A remote URL without credentials (https://user:token@host/... → https://host/...); nil for nil.
---@param url? string
---@return string?
function M.public_url(url) end

---The state of a git checkout (warns when it has uncommitted changes); raises when `dir` is not a git
---checkout with a commit.
---@param dir string
---@return rewind.env_deploy.GitInfo
function M.git_info(dir) end

---The image references a compose file names (its `image:` lines, quotes removed).
---@param path string
---@return string[]
function M.compose_images(path) end

---The images in use, from the configured source (list, compose file or command); nil when none is set.
---@param dep rewind.env_deploy.DeploymentPart
---@return string[]?
function M.images(dep) end

---Records the checkout's git state and the images in use, stored as the small object `deployment` too;
---returns the record.
---@param snap rewind.snapshot.Snap
---@param dep rewind.env_deploy.DeploymentPart
---@return rewind.env_deploy.DeploymentRecord
function M.backup_deployment(snap, dep) end

--- nil, or how the restored configuration directory differs from the record (its file count; the
--- bytes were checked against the object's sha256 while they streamed).
---@param dir string
---@param rec table
---@return string?
function M.check_config(dir, rec) end

---Moves the checkout to the recorded commit (detached); refuses a dirty tree unless force.
---@param dir string
---@param rec rewind.env_deploy.GitInfo
---@param force? boolean
function M.checkout(dir, rec, force) end

---Runs the deploy command (shell) with REWIND_IMAGES (the recorded images, one a line) and
---REWIND_GIT_COMMIT in its environment.
---@param command string
---@param rec rewind.env_deploy.DeploymentRecord
function M.deploy(command, rec) end

return M
