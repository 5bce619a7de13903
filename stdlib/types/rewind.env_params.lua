---@meta
-- rewind.env_params: the params env-backup and env-restore share, and the parts they configure.

---The parts the params configure (absent parts nil).
---@class rewind.env_params.Parts
---@field config? rewind.env_deploy.ConfigPart
---@field deployment? rewind.env_deploy.DeploymentPart
---@field mysql? rewind.env_mysql.Part
---@field elasticsearch? rewind.env_es.Part
---@field firebase? rewind.env_firebase.Part

---A declared param.
---@class rewind.env_params.Decl
---@field type "string"|"integer"|"boolean"|"duration"|"list"
---@field default? any
---@field doc string
---@field secret? boolean  redacted everywhere
---@field env? string      environment variable it is read from

local M = {}

---Every part, in the order a backup takes them and a restore puts them back.
---@type string[]
M.PARTS = { "config", "deployment", "mysql", "elasticsearch", "firebase" }

---The declared params shared by both procedures (store, prefix, target, lock_ttl, dry_run, level, workers,
---config.*, git.dir, images.*, mysql.*, elasticsearch.*, firebase.*, maintenance.*); a fresh table each
---call, so scripts add their own.
---@return table<string, rewind.env_params.Decl>
function M.declare() end

---The parts the (dotted) params configure. Contradictions are usage errors (exit 2) before anything runs:
---more than one images source, a bad or repeated mysql.databases name, elasticsearch.url without
---elasticsearch.location, firebase.url without a secret or token or not http(s), maintenance.on without
---maintenance.off (or the reverse). The secrets given are registered for redaction.
---@param p table<string, any> the run's params
---@return rewind.env_params.Parts
function M.parts(p) end

---The maintenance switch the params describe, or nil when maintenance.on is not given.
---@param p table<string, any>
---@return rewind.maintenance.Switch?
function M.maintenance(p) end

---Names of the configured parts, in the order of PARTS.
---@param parts rewind.env_params.Parts
---@return string[]
function M.names(parts) end

return M
