local t = require("rewind.testing")
local fs = require("rewind.fs")
local task = require("rewind.task")

t.test("write is atomic: no temp file left, replaces whole content", function()
  local d = fs.temp_dir("fs")
  local p = d .. "/sub/dir/a.txt"
  fs.write(p, "first version, longer")
  fs.write(p, "second")
  t.eq(fs.read(p), "second")
  local names = {}
  for _, e in ipairs(fs.list(d .. "/sub/dir")) do names[#names + 1] = e.name end
  t.eq(names, { "a.txt" })
end)

t.test("binary data round-trips", function()
  local d = fs.temp_dir()
  local data = "\0\1\2\255 binary\n"
  fs.write(d .. "/b.bin", data)
  t.eq(fs.read(d .. "/b.bin"), data)
end)

t.test("a writer that is not closed leaves nothing behind", function()
  local d = fs.temp_dir()
  local w = fs.writer(d .. "/partial.txt")
  w:write("half")
  w:abort()
  t.eq(fs.exists(d .. "/partial.txt"), false)
  t.eq(#fs.list(d), 0)
  local w2 = fs.writer(d .. "/full.txt")
  w2:write("all ")
  w2:write("of it")
  local info = w2:close()
  t.eq(info.bytes, 9)
  t.eq(fs.read(d .. "/full.txt"), "all of it")
end)

t.test("reader streams a file", function()
  local d = fs.temp_dir()
  fs.write(d .. "/r.txt", string.rep("x", 100000))
  local r = fs.reader(d .. "/r.txt")
  local first = r:read(10)
  t.eq(first, "xxxxxxxxxx")
  t.eq(#r:read_all(), 99990)
end)

t.test("list with a glob, sorted; walk with ** globs and rel paths", function()
  local d = fs.temp_dir()
  for _, f in ipairs({ "b.json", "a.json", "c.txt", "x/y/deep.json", "x/z.txt" }) do
    fs.write(d .. "/" .. f, f)
  end
  local names = {}
  for _, e in ipairs(fs.list(d, { glob = "*.json" })) do names[#names + 1] = e.name end
  t.eq(names, { "a.json", "b.json" })
  local all = {}
  for _, e in ipairs(fs.list(d)) do all[#all + 1] = e.name .. ":" .. e.type end
  t.eq(all, { "a.json:file", "b.json:file", "c.txt:file", "x:dir" })
  local rels = {}
  for e in fs.walk(d, { glob = "**/*.json" }) do rels[#rels + 1] = e.rel end
  t.eq(rels, { "a.json", "b.json", "x/y/deep.json" })
  local count = 0
  for _ in fs.walk(d) do count = count + 1 end
  t.eq(count, 7) -- a.json b.json c.txt x x/y x/y/deep.json x/z.txt
end)

t.test("stat reports size, type, mode and mtime; nil for missing", function()
  local d = fs.temp_dir()
  fs.write(d .. "/s.txt", "12345")
  local s = fs.stat(d .. "/s.txt")
  t.eq(s.size, 5)
  t.eq(s.type, "file")
  t.ok(s.mode > 0)
  t.ok(math.abs(s.mtime - os.time()) < 60)
  t.eq(fs.stat(d).type, "dir")
  t.eq(fs.stat(d .. "/nope"), nil)
end)

t.test("mkdir, rename, remove", function()
  local d = fs.temp_dir()
  fs.mkdir(d .. "/a/b/c")
  t.eq(fs.stat(d .. "/a/b/c").type, "dir")
  fs.write(d .. "/a/f", "x")
  fs.rename(d .. "/a/f", d .. "/a/g")
  t.ok(fs.exists(d .. "/a/g") and not fs.exists(d .. "/a/f"))
  t.raises(function() fs.remove(d .. "/a") end, "removing")
  t.eq(fs.remove(d .. "/a", { recursive = true }), true)
  t.eq(fs.remove(d .. "/a"), false)
end)

t.test("swap exchanges two directories in one step; a missing one is an error naming both", function()
  local d = fs.temp_dir()
  fs.write(d .. "/a/one", "A")
  fs.write(d .. "/b/two", "B")
  fs.swap(d .. "/a", d .. "/b")
  t.eq(fs.read(d .. "/a/two"), "B")
  t.eq(fs.read(d .. "/b/one"), "A")
  t.eq(fs.exists(d .. "/a/one"), false)
  t.raises(function() fs.swap(d .. "/a", d .. "/missing") end, "swapping " .. d .. "/a and " .. d .. "/missing")
  t.eq(fs.read(d .. "/a/two"), "B", "unchanged after a failed swap")
end)

t.test("read of a missing file names the file and the cause", function()
  local err = t.raises(function() fs.read("/nonexistent/dir/file.txt") end, "/nonexistent/dir/file.txt")
  t.contains(err, "No such file")
end)

local kept
t.test("temp_dir exists during the case", function()
  kept = fs.temp_dir("keep")
  fs.write(kept .. "/f", "x")
  t.ok(fs.exists(kept .. "/f"))
end)

t.test("temp_dir is removed at exit", function()
  t.ok(kept)
  t.eq(fs.exists(kept), false)
end)

t.test("bad glob is a clear error", function()
  t.raises(function() fs.list(".", { glob = "a[" }) end, "bad glob")
end)
