local t = require("rewind.testing")
local codec = require("rewind.codec")
local hash = require("rewind.hash")

-- 3 MiB of varied text: more than one 256 KiB chunk on both sides.
local function sample()
  local parts = {}
  for i = 1, 60000 do parts[#parts + 1] = string.format("row %d: größe %d 🎉 %s\n", i, i * 7, hash.sha256(tostring(i)):sub(1, 8)) end
  return table.concat(parts)
end

t.test("compress then decompress gives the bytes back (zstd, gzip)", function()
  local data = sample()
  for _, c in ipairs({ "zstd", "gzip" }) do
    local packed = codec.compress(data, { codec = c, level = 1 }):read_all()
    t.eq(#packed < #data, true)
    t.eq(hash.sha256(codec.decompress(packed, { codec = c }):read_all()), hash.sha256(data))
  end
  local mt = codec.compress(data, { level = 3, workers = 2 }):read_all()
  t.eq(codec.decompress(mt):read_all() == data, true)
end)

t.test("a truncated or damaged stream is an error, not short data", function()
  local packed = codec.compress(sample()):read_all()
  t.raises(function() codec.decompress(packed:sub(1, #packed // 2)):read_all() end)
  local gz = codec.compress(sample(), { codec = "gzip" }):read_all()
  t.raises(function() codec.decompress(gz:sub(1, #gz - 10), { codec = "gzip" }):read_all() end)
  t.raises(function() codec.decompress("not zstd at all"):read_all() end)
end)

t.test("an unknown codec is a usage error", function()
  t.raises(function() codec.compress("x", { codec = "lz4" }) end, "not one of none, gzip, zstd")
end)
