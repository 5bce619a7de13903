-- rewind.testing: cases and assertions for `rewind test`.
-- A test file registers cases; the runner calls each one (async: cases may sleep, spawn or do I/O).
--
--   local t = require("rewind.testing")
--   t.test("adds", function() t.eq(1 + 1, 2) end)

local M = { _cases = {} }

--- Registers a test case.
function M.test(name, fn)
  M._cases[#M._cases + 1] = { name = name, fn = fn }
end

local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" or depth > 3 then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = (type(k) == "number" and "" or (tostring(k) .. "=")) .. show(v[k], depth + 1)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end
M.show = show

local function deep_eq(a, b, path)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then
    return false, path .. ": " .. show(a) .. " ~= " .. show(b)
  end
  for k, v in pairs(a) do
    local ok, why = deep_eq(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k, v in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. ": nil ~= " .. show(v) end
  end
  return true
end

--- Deep equality of two values.
function M.eq(actual, expected, msg)
  local ok, why = deep_eq(actual, expected, "value")
  if not ok then
    error((msg and (msg .. ": ") or "") .. "expected " .. show(expected) .. ", got " .. show(actual) .. " (" .. why .. ")", 2)
  end
end

--- Asserts that a value is truthy.
function M.ok(v, msg)
  if not v then error(msg or ("expected a true value, got " .. show(v)), 2) end
  return v
end

--- Asserts that `fn` raises an error whose message contains `pattern` (plain text); returns the message.
function M.raises(fn, pattern, msg)
  local ok, err = pcall(fn)
  if ok then error((msg or "expected an error") .. ", but the call succeeded", 2) end
  local text = tostring(err)
  if pattern and not text:find(pattern, 1, true) then
    error((msg and (msg .. ": ") or "") .. "error does not mention " .. show(pattern) .. ": " .. text, 2)
  end
  return text
end

--- Asserts that a string contains a plain substring.
function M.contains(haystack, needle, msg)
  if type(haystack) ~= "string" or not haystack:find(needle, 1, true) then
    error((msg and (msg .. ": ") or "") .. show(haystack) .. " does not contain " .. show(needle), 2)
  end
end

return M
