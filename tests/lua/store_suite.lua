-- The store API suite, run against every backend. A *_test.lua file loads it with
--   dofile("tests/lua/store_suite.lua")(t, open)
-- where `open()` returns a fresh, empty store (a new temp dir or a new prefix).
local fs = require("rewind.fs")
local exec = require("rewind.exec")
local hash = require("rewind.hash")
local codec = require("rewind.codec")

return function(t, open)
  t.test("put, get, head, exists", function()
    local s = open()
    local r = s:put("a/b.txt", "hello")
    t.eq(r.key, "a/b.txt")
    t.eq(r.size, 5)
    t.ok(r.etag)
    t.eq(s:get("a/b.txt"), "hello")
    local h = s:head("a/b.txt")
    t.eq(h.size, 5)
    t.eq(h.key, "a/b.txt")
    t.ok(type(h.mtime) == "number")
    t.eq(s:exists("a/b.txt"), true)
    t.eq(s:exists("a/c.txt"), false)
    t.eq(s:head("nope"), nil)
    -- overwrite replaces
    s:put("a/b.txt", "bye")
    t.eq(s:get("a/b.txt"), "bye")
  end)

  t.test("empty object", function()
    local s = open()
    t.eq(s:put("empty", "").size, 0)
    t.eq(s:get("empty"), "")
    t.eq(s:head("empty").size, 0)
  end)

  t.test("missing object is an error naming the key", function()
    local s = open()
    t.raises(function() s:get("no/such/key") end, "no/such/key")
  end)

  t.test("bad keys are refused", function()
    local s = open()
    t.raises(function() s:put("../escape", "x") end, "..")
    t.raises(function() s:put("a/../../escape", "x") end, "..")
    t.raises(function() s:put("/abs", "x") end, "absolute")
    t.raises(function() s:put("", "x") end, "empty")
    t.raises(function() s:get("a/./b") end, "'.'")
  end)

  t.test("reader with ranges and writer", function()
    local s = open()
    local w = s:writer("w/obj")
    w:write("0123456789")
    w:write("abcdef")
    local c = w:close()
    t.eq(c.key, "w/obj")
    t.eq(c.bytes, 16)
    t.eq(s:get("w/obj"), "0123456789abcdef")
    t.eq(s:reader("w/obj"):read_all(), "0123456789abcdef")
    t.eq(s:reader("w/obj", { offset = 10 }):read_all(), "abcdef")
    t.eq(s:reader("w/obj", { offset = 2, length = 3 }):read_all(), "234")
    t.eq(s:reader("w/obj", { length = 4 }):read_all(), "0123")
  end)

  t.test("an aborted writer leaves nothing", function()
    local s = open()
    local w = s:writer("aborted/obj")
    w:write("partial")
    w:abort()
    t.eq(s:exists("aborted/obj"), false)
    local n = 0
    for _ in s:list("aborted/") do n = n + 1 end
    t.eq(n, 0)
  end)

  t.test("reader into put (streaming copy between keys)", function()
    local s = open()
    s:put("src", string.rep("x", 300000))
    local r = s:put("dst", s:reader("src"))
    t.eq(r.size, 300000)
    t.eq(s:get("dst"), string.rep("x", 300000))
  end)

  t.test("put_file and get_file", function()
    local s = open()
    local dir = fs.temp_dir("store")
    fs.write(dir .. "/in.bin", "file content\0with nul")
    t.eq(s:put_file("f/in.bin", dir .. "/in.bin").size, 21)
    local g = s:get_file("f/in.bin", dir .. "/out/out.bin")
    t.eq(g.size, 21)
    t.eq(fs.read(dir .. "/out/out.bin"), "file content\0with nul")
  end)

  t.test("list is in key order with metadata, filtered by prefix", function()
    local s = open()
    for _, k in ipairs({ "p/b", "p/a/2", "p/a/1", "p/a.x", "p/c/d/e", "q/z", "pz" }) do
      s:put(k, k)
    end
    local keys = {}
    for o in s:list("p/") do
      keys[#keys + 1] = o.key
      t.eq(o.size, #o.key)
      t.ok(o.etag)
      t.ok(type(o.mtime) == "number")
    end
    t.eq(keys, { "p/a.x", "p/a/1", "p/a/2", "p/b", "p/c/d/e" })
    keys = {}
    for o in s:list("p") do keys[#keys + 1] = o.key end
    t.eq(keys, { "p/a.x", "p/a/1", "p/a/2", "p/b", "p/c/d/e", "pz" })
    keys = {}
    for o in s:list("p/a") do keys[#keys + 1] = o.key end
    t.eq(keys, { "p/a.x", "p/a/1", "p/a/2" })
    keys = {}
    for o in s:list() do keys[#keys + 1] = o.key end
    t.eq(#keys, 7)
    keys = {}
    for o in s:list("nothing/") do keys[#keys + 1] = o.key end
    t.eq(keys, {})
  end)

  t.test("list pages through more keys than a page", function()
    local s = open()
    local task = require("rewind.task")
    local items = {}
    for i = 1, 2500 do items[i] = i end
    task.map(items, 16, function(i) s:put(string.format("many/%05d", i), "") end)
    local n, last = 0, ""
    for o in s:list("many/") do
      n = n + 1
      t.ok(o.key > last, "keys in order")
      last = o.key
    end
    t.eq(n, 2500)
    -- batched delete
    local keys = {}
    for i = 1, 2500 do keys[i] = string.format("many/%05d", i) end
    t.eq(s:delete(keys), 2500)
    s:delete({ "many/missing" }) -- missing keys are not an error
    n = 0
    for _ in s:list("many/") do n = n + 1 end
    t.eq(n, 0)
  end)

  t.test("delete one key, copy", function()
    local s = open()
    s:put("c/1", "one")
    s:copy("c/1", "c/2")
    t.eq(s:get("c/2"), "one")
    t.eq(s:delete("c/1"), 1)
    t.eq(s:exists("c/1"), false)
    t.raises(function() s:copy("c/1", "c/3") end, "c/1")
  end)

  t.test("create_if_absent", function()
    local s = open()
    t.eq((s:create_if_absent("locks/x", "first")), true)
    t.eq(s:create_if_absent("locks/x", "second"), false)
    t.eq(s:get("locks/x"), "first")
  end)

  t.test("conditional writes: get_versioned, replace_if, delete_if", function()
    local s = open()
    t.eq(s:get_versioned("cas/none"), nil)
    local created, v1 = s:create_if_absent("cas/k", "one")
    t.eq(created, true)
    t.ok(type(v1) == "string" and v1 ~= "", "a version")
    local body, v = s:get_versioned("cas/k")
    t.eq(body, "one")
    t.eq(v, v1)
    local v2 = s:replace_if("cas/k", "two", v1)
    t.ok(type(v2) == "string" and v2 ~= v1, "a new version")
    t.eq(s:get("cas/k"), "two")
    -- The old version no longer matches: refused, nothing changed.
    t.eq(s:replace_if("cas/k", "three", v1), false)
    t.eq(s:get("cas/k"), "two")
    t.eq(s:delete_if("cas/k", v1), false)
    t.eq(s:exists("cas/k"), true)
    -- Someone else's write changes the version.
    s:put("cas/k", "other")
    t.eq(s:replace_if("cas/k", "mine", v2), false)
    t.eq(s:get("cas/k"), "other")
    local _, v3 = s:get_versioned("cas/k")
    t.eq(s:delete_if("cas/k", v3), true)
    t.eq(s:exists("cas/k"), false)
    -- Gone: replace refuses, delete counts it as done.
    t.eq(s:replace_if("cas/k", "x", v3), false)
    t.eq(s:exists("cas/k"), false)
    t.eq(s:delete_if("cas/k", v3), true)
  end)

  t.test("create_if_absent idempotent: our own bytes count as created, others' do not", function()
    local s = open()
    local created, v = s:create_if_absent("idem", "token-1")
    t.eq(created, true)
    local again, v2 = s:create_if_absent("idem", "token-1", { idempotent = true })
    t.eq(again, true)
    t.eq(v2, v)
    t.eq(s:create_if_absent("idem", "token-1"), false)
    t.eq(s:create_if_absent("idem", "token-2", { idempotent = true }), false)
  end)

  t.test("replace_if race: exactly one of many wins", function()
    local s = open()
    local task = require("rewind.task")
    local _, v = s:create_if_absent("rrace", "start")
    local items = {}
    for i = 1, 8 do items[i] = i end
    local results = task.map(items, 8, function(i) return s:replace_if("rrace", "w" .. i, v) end)
    local wins, winner = 0, nil
    for i, r in ipairs(results) do if r then wins, winner = wins + 1, i end end
    t.eq(wins, 1)
    t.eq(s:get("rrace"), "w" .. winner)
  end)

  t.test("leftovers: none in a fresh store", function()
    local s = open()
    s:put("lo/a", "1")
    local r = s:leftovers("lo", 0)
    t.eq(r.count, 0)
  end)

  t.test("rewind.lock on this store: refused while held, taken over once expired, released", function()
    local lock = require("rewind.lock")
    local json = require("rewind.json")
    local time = require("rewind.time")
    local s = open()
    local l = lock.target(s, "p", { owner = "suite", ttl = "1m" })
    t.raises(function() lock.target(s, "p", { owner = "other" }) end, "p is locked by suite on")
    t.eq(l:check(), true)
    local rec, version = lock.holder(s, "target", { prefix = "p" })
    t.eq(rec.token, l.token)
    t.eq(version, l.version)
    t.eq(l:release(), true)
    t.eq(s:exists("p/locks/target.json"), false)
    t.eq(l:release(), false)
    -- An expired lease of another host is taken over (by compare-and-swap on its version).
    s:put("q/locks/target.json", json.encode({ owner = "old", host = "elsewhere", pid = 1, token = "t-old",
      acquired_at = "2020-01-01T00:00:00Z", expires_at = "2020-01-01T00:02:00Z", expires = time.now() - 5 }))
    local l2 = lock.target(s, "q", { owner = "suite", ttl = "1m" })
    t.eq(lock.holder(s, "target", { prefix = "q" }).token, l2.token)
    -- One in force is not.
    s:put("r/locks/target.json", json.encode({ owner = "live", host = "elsewhere", pid = 1, token = "t-live",
      acquired_at = "2020-01-01T00:00:00Z", expires_at = "2099-01-01T00:00:00Z", expires = time.now() + 60 }))
    t.raises(function() lock.target(s, "r", { owner = "suite" }) end, "r is locked by live on elsewhere (pid 1)")
    t.eq(lock.remove(s, "target", { prefix = "r" }).owner, "live")
    t.eq(s:exists("r/locks/target.json"), false)
    l2:release()
  end)

  t.test("create_if_absent race: exactly one of many wins", function()
    local s = open()
    local task = require("rewind.task")
    local items = {}
    for i = 1, 16 do items[i] = i end
    local results = task.map(items, 16, function(i) return s:create_if_absent("race", "w" .. i) end)
    local wins = 0
    for _, r in ipairs(results) do if r then wins = wins + 1 end end
    t.eq(wins, 1)
  end)

  t.test("put_cas: strings, readers, files, dedupe and compression", function()
    local s = open()
    local sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" -- sha256("hello")
    local r = s:put_cas("hello", { prefix = "cas" })
    t.eq(r.sha256, sha)
    t.eq(r.key, "cas/2c/" .. sha)
    t.eq(r.new, true)
    t.eq(r.size, 5)
    t.eq(s:get(r.key), "hello")
    r = s:put_cas(s:reader(r.key), { prefix = "cas" })
    t.eq(r.sha256, sha)
    t.eq(r.new, false)
    local dir = fs.temp_dir("cas")
    fs.write(dir .. "/f", "hello")
    r = s:put_cas({ file = dir .. "/f" }, { prefix = "cas" })
    t.eq(r.new, false)
    t.eq(r.key, "cas/2c/" .. sha)
    -- compressed: the hash is of the original bytes, the object holds zstd
    local big = string.rep("abcdefgh", 100000)
    r = s:put_cas(big, { prefix = "z", compression = "zstd" })
    t.eq(r.size, #big)
    t.eq(r.new, true)
    t.ok(r.stored_size < #big / 10)
    fs.write(dir .. "/z.zst", s:get(r.key))
    local out = exec.run({ "zstd", "-dc", dir .. "/z.zst" })
    t.eq(out.stdout == big, true)
    local sum = exec.run({ "sha256sum", dir .. "/z.zst" })
    t.ok(sum.stdout:sub(1, 64) ~= r.sha256)
    -- the level reaches the codec: text compresses better at 9 than at 1
    local words, x = {}, 7
    for i = 1, 40000 do
      x = (x * 1103515245 + 12345) % 2147483648
      words[i] = ({ "alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta" })[x % 8 + 1] .. (x % 97)
    end
    local text = table.concat(words, " ")
    local l1 = s:put_cas(text, { prefix = "l1", compression = "gzip", level = 1 })
    local l9 = s:put_cas(text, { prefix = "l9", compression = "gzip", level = 9 })
    t.ok(l1.stored_size > l9.stored_size, "level 1 should store more bytes than level 9")
    r = s:put_cas(big, { prefix = "g", compression = "gzip" })
    fs.write(dir .. "/g.gz", s:get(r.key))
    out = exec.run({ "gzip", "-dc", dir .. "/g.gz" })
    t.eq(out.stdout == big, true)
    t.raises(function() s:put_cas("x", { compression = "lz4" }) end, "lz4")
  end)

  t.test("put_cas with a known sha256: opened only when absent, checked while streaming", function()
    local s = open()
    local data = string.rep("stream bytes ", 5000)
    local sha = hash.sha256(data)
    local opened = 0
    local function input()
      opened = opened + 1
      return codec.decompress(codec.compress(data, { codec = "gzip" }), { codec = "gzip" })
    end
    local opts = { prefix = "known/x", sha256 = sha, size = #data, compression = "gzip", suffix = ".gz" }
    local r = s:put_cas(input, opts)
    t.eq(r.key, "known/x/" .. sha:sub(1, 2) .. "/" .. sha .. ".gz")
    t.eq(r.new, true)
    t.eq(r.size, #data)
    t.eq(opened, 1)
    t.eq(codec.decompress(s:reader(r.key), { codec = "gzip" }):read_all() == data, true)
    r = s:put_cas(input, opts)
    t.eq(r.new, false)
    t.eq(opened, 1, "an object already stored is not downloaded again")
    -- Bytes that do not hash to the name fail, and nothing is stored.
    local other = hash.sha256("other")
    t.raises(function()
      s:put_cas(function() return codec.decompress(codec.compress("not other"), {}) end,
        { prefix = "known/y", sha256 = other })
    end, "corrupt")
    t.eq(s:exists("known/y/" .. other:sub(1, 2) .. "/" .. other), false)
    t.raises(function() s:put_cas("x", { sha256 = "abc" }) end, "64 hex digits")
    t.raises(function() s:put_cas("x", { suffix = "a/b" }) end, "must not contain")
  end)
end
