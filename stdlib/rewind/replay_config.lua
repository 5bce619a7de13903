-- rewind.replay_config: the dependents config of a replay (source document 002), read as the document
-- writes it and checked before anything is touched.
--
--   { "raw": { "outputKafkaTopic": "telemetry.valid",
--              "dependentSinkSources": [ { "type": "azure", "prefix": "unique" },
--                                        { "type": "druid", "prefix": "telemetry-events" } ] }, ... }
--
-- An entry names the topic its archive is replayed into and the sinks that consumed that topic: their
-- output for a replayed day must be removed first (or it would be there twice). `azure` dependents are
-- folders in the replay's store (any store works: the type name is the document's), `druid` dependents
-- are datasources. Beyond the document, an `azure` dependent may carry its own `layout`.
local json = require("rewind.json")
local fs = require("rewind.fs")

local M = {}

local STORE_TYPES = { azure = true, store = true, s3 = true, file = true }

local function bad(entry, msg)
  error(string.format("replay config entry %q: %s", entry, msg), 0)
end

--- Checks one entry and returns it normalized: {name, topic, stores = {{prefix, layout}}, druid = {names}}.
function M.check_entry(name, e)
  if type(e) ~= "table" then
    bad(name, "expected an object with outputKafkaTopic and dependentSinkSources, got " .. type(e))
  end
  local topic = e.outputKafkaTopic
  if type(topic) ~= "string" or topic == "" then
    bad(name, "outputKafkaTopic is missing or not a string")
  end
  local deps = e.dependentSinkSources
  if deps == nil then deps = {} end
  if type(deps) ~= "table" then
    bad(name, "dependentSinkSources must be a list, got " .. type(deps))
  end
  local out = { name = name, topic = topic, stores = {}, druid = {} }
  local seen = {}
  for i, d in ipairs(deps) do
    local where = string.format("dependentSinkSources[%d]", i)
    if type(d) ~= "table" then bad(name, where .. " must be an object with type and prefix") end
    if type(d.prefix) ~= "string" or d.prefix == "" then
      bad(name, where .. ".prefix is missing or empty")
    end
    local id = tostring(d.type) .. ":" .. d.prefix
    if seen[id] then bad(name, where .. " repeats " .. id) end
    seen[id] = true
    if STORE_TYPES[d.type] then
      local p = d.prefix:gsub("^/+", ""):gsub("/+$", "")
      for part in p:gmatch("[^/]+") do
        if part == "." or part == ".." then bad(name, where .. ".prefix " .. d.prefix .. " has a '.' or '..' part") end
      end
      if p == "" then bad(name, where .. ".prefix " .. d.prefix .. " names the whole store") end
      out.stores[#out.stores + 1] = { prefix = p, layout = d.layout }
    elseif d.type == "druid" then
      out.druid[#out.druid + 1] = d.prefix
    else
      bad(name, string.format("%s.type is %q (expected azure or druid)", where, tostring(d.type)))
    end
  end
  return out
end

--- Reads a config file (JSON as in the document; YAML also works) into its entries, naming the file in
--- every error.
function M.read_file(path)
  if not fs.exists(path) then error("replay config " .. path .. " does not exist", 0) end
  local text = fs.read(path)
  local ok, doc = pcall(json.decode, text)
  if not ok then
    local yok, ydoc = pcall(function() return require("rewind.yaml").decode(text) end)
    if not yok or type(ydoc) ~= "table" then
      error("replay config " .. path .. " is not valid JSON: " .. tostring(doc):gsub("^runtime error: ", ""), 0)
    end
    doc = ydoc
  end
  if type(doc) ~= "table" then error("replay config " .. path .. " must be an object of entries", 0) end
  return doc
end

--- The entry to replay: from `entries` (name -> raw entry), picked by `source` (optional when there is
--- only one). Every entry is checked, so a mistake anywhere in the file is reported before any work.
function M.pick(entries, source)
  local names = {}
  for name in pairs(entries) do names[#names + 1] = name end
  table.sort(names)
  local checked = {}
  for _, name in ipairs(names) do checked[name] = M.check_entry(name, entries[name]) end
  if #names == 0 then
    error("replay: no dependents config: pass config=FILE.json, --params-file with the document's entries, or sources={...}", 0)
  end
  if source == nil or source == "" then
    if #names == 1 then return checked[names[1]] end
    error("replay: the config has several entries (" .. table.concat(names, ", ") .. "): pass source=NAME", 0)
  end
  local e = checked[source]
  if not e then
    error(string.format("replay: source %q is not in the config (entries: %s)", source, table.concat(names, ", ")), 0)
  end
  return e
end

return M
