-- The store API suite against the local backend, plus local-only checks.
local t = require("rewind.testing")
local store = require("rewind.store")
local fs = require("rewind.fs")
local env = require("rewind.env")

local function open()
  return store.open(fs.temp_dir("store-local"))
end

dofile("tests/lua/store_suite.lua")(t, open)

t.test("file:// URLs and plain paths name the same store", function()
  local dir = fs.temp_dir("store-url")
  local a = store.open("file://" .. dir)
  local b = store.open(dir)
  a:put("k", "v")
  t.eq(b:get("k"), "v")
  t.eq(a.url, "file://" .. dir)
  t.eq(fs.read(dir .. "/k"), "v")
end)

t.test("default store: REWIND_STORE, else XDG_DATA_HOME, else ~/.local/share", function()
  local url = store.default_url()
  local rs = env.get("REWIND_STORE")
  if rs and rs ~= "" then
    t.eq(url, rs)
  else
    local xdg = env.get("XDG_DATA_HOME")
    if xdg and xdg ~= "" then
      t.eq(url, xdg .. "/rewind/store")
    else
      t.eq(url, env.get("HOME") .. "/.local/share/rewind/store")
    end
  end
end)

t.test("unknown scheme is a usage error", function()
  t.raises(function() store.open("ftp://x/y") end, "unknown scheme")
end)

t.test("temp files are never listed and writes leave no temp files", function()
  local dir = fs.temp_dir("store-tmp")
  local s = store.open(dir)
  local w = s:writer("d/x")
  w:write("abc")
  local n = 0
  for _ in s:list() do n = n + 1 end
  t.eq(n, 0, "uncommitted writer invisible")
  w:close()
  s:create_if_absent("d/y", "1")
  s:create_if_absent("d/y", "2")
  local names = {}
  for _, e in ipairs(fs.list(dir .. "/d")) do names[#names + 1] = e.name end
  table.sort(names)
  t.eq(names, { "x", "y" })
end)
