-- rewind.env_params: the params env-backup and env-restore share (source document 003), and the
-- parts they describe. One YAML params file configures a whole environment; its nested mappings
-- (`mysql: {databases: [...]}`) become the dotted params declared here (`mysql.databases`).
local errors = require("rewind.errors")
local env = require("rewind.env")

local M = {}

--- Every part, in the order a backup takes them and a restore puts them back.
M.PARTS = { "config", "deployment", "mysql", "elasticsearch", "firebase" }

--- The declared params shared by both procedures (a fresh table each call: scripts add their own).
function M.declare()
  return {
    store = { type = "string", doc = "store URL (default: the local store, or REWIND_STORE)" },
    prefix = { type = "string", default = "env", doc = "snapshot prefix in the store (one per environment)" },
    target = { type = "string", default = "environment", doc = "name of the environment (recorded in the manifest)" },
    lock_ttl = { type = "duration", default = "2m", doc = "lease length of the prefix's lock: no second backup or restore runs while it is held" },
    dry_run = { type = "boolean", default = false, doc = "print the plan, change nothing" },
    level = { type = "integer", default = 1, doc = "zstd level of dumps and tars" },
    workers = { type = "integer", default = 0, doc = "zstd worker threads for dumps (0: compress on one thread)" },

    ["config.dir"] = { type = "string", doc = "configuration directory (config-local): a tar, modes and symlinks kept" },
    ["config.exclude"] = { type = "list", doc = "globs left out of the configuration tar" },

    ["git.dir"] = { type = "string", doc = "deployment git checkout: HEAD's commit, branch, remote and status are recorded" },
    ["images.list"] = { type = "list", doc = "container images in use (name:tag), recorded as given" },
    ["images.compose_file"] = { type = "string", doc = "compose file whose image: lines name the images in use" },
    ["images.command"] = { type = "string", doc = "shell command printing the images in use, one per line" },

    ["mysql.databases"] = { type = "list", doc = "MySQL/MariaDB databases, one streamed dump each" },
    ["mysql.host"] = { type = "string", doc = "server host (default: the client's, usually the local socket)" },
    ["mysql.port"] = { type = "integer", doc = "server port" },
    ["mysql.socket"] = { type = "string", doc = "server unix socket" },
    ["mysql.user"] = { type = "string", doc = "user" },
    ["mysql.password"] = { type = "string", secret = true, env = "MYSQL_PWD",
      doc = "password (secret; MYSQL_PWD): handed to the clients in their environment only" },
    ["mysql.defaults_file"] = { type = "string", doc = "client option file with the credentials (--defaults-extra-file)" },
    ["mysql.dump_command"] = { type = "string", doc = "dump program (default: mariadb-dump, else mysqldump)" },
    ["mysql.client_command"] = { type = "string", doc = "client program (default: mariadb, else mysql)" },
    ["mysql.count_rows"] = { type = "boolean", default = true,
      doc = "record exact row counts per table (a COUNT(*) per table) and check them after a restore" },

    ["elasticsearch.url"] = { type = "string", doc = "Elasticsearch URL, e.g. http://127.0.0.1:9200" },
    ["elasticsearch.user"] = { type = "string", doc = "basic-auth user" },
    ["elasticsearch.password"] = { type = "string", secret = true, env = "ES_PASSWORD", doc = "basic-auth password (secret; ES_PASSWORD)" },
    ["elasticsearch.repository"] = { type = "string", default = "rewind", doc = "name of the fs snapshot repository (registered when missing)" },
    ["elasticsearch.location"] = { type = "string", doc = "the repository's directory as Elasticsearch sees it (under path.repo)" },
    ["elasticsearch.dir"] = { type = "string", doc = "the same directory as rewind sees it (default: location)" },
    ["elasticsearch.indices"] = { type = "string", default = "*", doc = "indices to snapshot (comma list, wildcards)" },
    ["elasticsearch.shared"] = { type = "boolean", default = false,
      doc = "the repository is shared storage: record the snapshot's name and indices only, no tar" },

    ["firebase.url"] = { type = "string", doc = "Realtime Database URL, e.g. https://athena.firebaseio.com" },
    ["firebase.path"] = { type = "string", default = "/", doc = "node exported and replaced" },
    ["firebase.secret"] = { type = "string", secret = true, env = "FIREBASE_SECRET", doc = "database secret (secret; FIREBASE_SECRET)" },
    ["firebase.token"] = { type = "string", secret = true, env = "FIREBASE_TOKEN", doc = "OAuth access token instead of a secret (secret; FIREBASE_TOKEN)" },

    ["maintenance.on"] = { type = "string", doc = "turns maintenance on: an http(s) URL (called with maintenance.method) or a shell command" },
    ["maintenance.off"] = { type = "string", doc = "turns maintenance off again (always: on success, failure, Ctrl-C and SIGTERM)" },
    ["maintenance.method"] = { type = "string", default = "POST", doc = "HTTP method of maintenance URLs" },
    ["maintenance.token"] = { type = "string", secret = true, env = "MAINTENANCE_TOKEN", doc = "bearer token for maintenance URLs (secret)" },
    ["maintenance.timeout"] = { type = "duration", default = "1m", doc = "how long a maintenance call may take" },
  }
end

local function given(v) return v ~= nil and v ~= "" end

--- The parts the params configure: `{config = {...}, deployment = {...}, ...}` (absent parts nil).
--- Contradictions are usage errors (exit 2) before anything runs; secrets are registered for redaction.
function M.parts(p)
  local parts = {}
  for _, k in ipairs({ "mysql.password", "elasticsearch.password", "firebase.secret", "firebase.token", "maintenance.token" }) do
    if given(p[k]) then env.mark_secret(p[k]) end
  end
  if given(p["config.dir"]) then
    parts.config = { dir = p["config.dir"], exclude = p["config.exclude"] or {} }
  end
  local sources = 0
  for _, k in ipairs({ "images.list", "images.compose_file", "images.command" }) do
    if p[k] ~= nil and not (type(p[k]) == "table" and #p[k] == 0) then sources = sources + 1 end
  end
  if sources > 1 then errors.usage("give one of images.list, images.compose_file, images.command") end
  if given(p["git.dir"]) or sources == 1 then
    parts.deployment = { git_dir = p["git.dir"], images = p["images.list"], compose_file = p["images.compose_file"],
      images_command = p["images.command"] }
  end
  local dbs = p["mysql.databases"] or {}
  if #dbs > 0 then
    local seen = {}
    for _, d in ipairs(dbs) do
      if d == "" or d:find("[/\\%.%c]") then errors.usage("mysql.databases: '" .. d .. "' is not a database name") end
      if seen[d] then errors.usage("mysql.databases: " .. d .. " is listed twice") end
      seen[d] = true
    end
    parts.mysql = { databases = dbs, host = p["mysql.host"], port = p["mysql.port"], socket = p["mysql.socket"],
      user = p["mysql.user"], password = p["mysql.password"], defaults_file = p["mysql.defaults_file"],
      dump_command = p["mysql.dump_command"], client_command = p["mysql.client_command"],
      count_rows = p["mysql.count_rows"] ~= false }
  end
  if given(p["elasticsearch.url"]) then
    if not given(p["elasticsearch.location"]) then
      errors.usage("elasticsearch.url needs elasticsearch.location (the fs repository's directory under path.repo)")
    end
    parts.elasticsearch = { url = p["elasticsearch.url"]:gsub("/+$", ""), user = p["elasticsearch.user"],
      password = p["elasticsearch.password"], repository = p["elasticsearch.repository"],
      location = p["elasticsearch.location"], dir = p["elasticsearch.dir"] or p["elasticsearch.location"],
      indices = p["elasticsearch.indices"], shared = p["elasticsearch.shared"] }
  end
  if given(p["firebase.url"]) then
    if not (given(p["firebase.secret"]) or given(p["firebase.token"])) then
      errors.usage("firebase.url needs firebase.secret (FIREBASE_SECRET) or firebase.token (FIREBASE_TOKEN)")
    end
    if not p["firebase.url"]:match("^https?://") then
      errors.usage("firebase.url must be an http(s) URL, got " .. p["firebase.url"])
    end
    parts.firebase = { url = p["firebase.url"]:gsub("/+$", ""), path = p["firebase.path"],
      secret = p["firebase.secret"], token = p["firebase.token"] }
  end
  if given(p["maintenance.on"]) ~= given(p["maintenance.off"]) then
    errors.usage("give maintenance.on and maintenance.off together (maintenance that is turned on must be turned off)")
  end
  return parts
end

--- The maintenance switch the params describe, or nil.
function M.maintenance(p)
  if not given(p["maintenance.on"]) then return nil end
  return { on = p["maintenance.on"], off = p["maintenance.off"], method = p["maintenance.method"],
    token = p["maintenance.token"], timeout = p["maintenance.timeout"] }
end

--- Names of the configured parts, in order.
function M.names(parts)
  local out = {}
  for _, name in ipairs(M.PARTS) do
    if parts[name] then out[#out + 1] = name end
  end
  return out
end

return M
