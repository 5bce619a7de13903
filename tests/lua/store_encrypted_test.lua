-- A local store encrypted with age (a passphrase): ranged reads over plaintext offsets across the 64 KiB chunks of age's STREAM and the "is encrypted" message.
local t = require("rewind.testing")
local store = require("rewind.store")
local fs = require("rewind.fs")

local PASS = "store-encrypted-test-passphrase"

local function open(dir)
  return store.open(dir or fs.temp_dir("store-enc"), { passphrase = PASS })
end

-- (The shared store suite is not run here: it checks sizes, which are ciphertext sizes here, and a
-- passphrase costs one scrypt per object.)

t.test("encrypted: objects are age files; ranges are plaintext offsets; no key says so", function()
  local dir = fs.temp_dir("store-enc-range")
  local s = open(dir)
  local parts = {}
  for i = 1, 30000 do parts[#parts + 1] = string.format("%07d\n", i) end
  local data = table.concat(parts) -- 240000 bytes: four chunks
  s:put("big", data)
  t.eq(fs.read(dir .. "/big"):sub(1, 21), "age-encryption.org/v1")
  t.eq(s:get("big"), data)
  for _, r in ipairs({ { 0, 10 }, { 65530, 20 }, { 131072, 65536 }, { 200000, 40000 }, { 239990, 10 }, { 100, nil } }) do
    local got = s:reader("big", { offset = r[1], length = r[2] }):read_all()
    t.eq(got, data:sub(r[1] + 1, r[2] and r[1] + r[2] or #data), "range " .. r[1])
  end
  local ok, err = pcall(function() return store.open(dir):get("big") end)
  t.eq(ok, false)
  t.contains(tostring(err), "big is encrypted (age): give identity= or passphrase=")
  local ok2, err2 = pcall(function() return store.open(dir, { passphrase = "wrong" }):get("big") end)
  t.eq(ok2, false)
  t.contains(tostring(err2), "key does not match")
end)
