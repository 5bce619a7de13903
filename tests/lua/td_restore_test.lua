-- Unit tests for rewind.td_restore (planning, ordering, rewriting, cycles) and rewind.td endpoints.
local t = require("rewind.testing")
local R = require("rewind.td_restore")
local td = require("rewind.td")
local json = require("rewind.json")

local function folder(id, name, parent)
  return { id = id, type = "folder-segment", attributes = { name = name, audienceId = "1" },
    relationships = { parentFolder = { data = parent and { id = parent, type = "folder-segment" } or json.null } } }
end
local function seg(id, name, parent, rule, etype, extra)
  local attrs = { name = name, audienceId = "1", rule = rule, createdAt = "x", population = 5 }
  for k, v in pairs(extra or {}) do attrs[k] = v end
  return { id = id, type = etype or "segment-batch", attributes = attrs,
    relationships = { parentFolder = { data = { id = parent, type = "folder-segment" } } } }
end
local function ref(id, kind) return { type = kind or "Reference", id = id } end
local function nest(depth, leaf)
  local node = leaf
  for i = 1, depth do node = { type = (i % 2 == 0) and "And" or "Or", conditions = { node } } end
  return node
end

local function backup(entities)
  local folders, segs = {}, {}
  for _, e in ipairs(entities) do
    if e.type == "folder-segment" then folders[#folders + 1] = e else segs[#segs + 1] = e end
  end
  -- by-folder lists segments too (without the whole rule sometimes); all_segments_config has them whole
  local listed = {}
  for _, e in ipairs(folders) do listed[#listed + 1] = e end
  for _, e in ipairs(segs) do listed[#listed + 1] = { id = e.id, type = e.type, attributes = { name = e.attributes.name },
    relationships = e.relationships } end
  return { ms_config = { id = "1", name = "ps", population = 3, createdAt = "x", createdBy = { id = "1" },
    attributes = { { audienceId = "1", name = "age" } } },
    folder_config = { data = listed }, all_segments_config = { data = segs } }
end

local function sample()
  return backup({
    folder("10", "Root"), folder("11", "A", "10"), folder("12", "B", "11"), folder("13", "C", "12"), folder("14", "Side", "10"),
    seg("20", "base", "13", { type = "And", conditions = {} }),
    seg("21", "deep", "11", nest(4, ref("22"))),
    seg("22", "mid", "14", { type = "And", conditions = { ref("20") } }),
    seg("23", "pred", "12", nil, "predictive-segment", { segmentId = "20" }),
    seg("24", "score", "14", nest(5, ref("23", "PredictiveScoreReference"))),
    seg("25", "empty", "14", {}),
    seg("26", "rt", "12", { type = "And", conditions = {} }, "segment-realtime"),
    { id = "27", type = "funnel", attributes = { name = "f" }, relationships = { parentFolder = { data = { id = "14" } } } },
  })
end

local function position(plan)
  local pos, n = {}, 0
  for _, level in ipairs(plan.levels) do for _, e in ipairs(level) do n = n + 1; pos[e.id] = n end end
  return pos
end

t.test("plan orders every entity after what it references, at any rule depth", function()
  local plan = R.plan(sample())
  local pos = position(plan)
  t.eq(plan.count, 7)
  t.ok(pos["20"] < pos["22"] and pos["22"] < pos["21"], "base < mid < deep")
  t.ok(pos["20"] < pos["23"] and pos["23"] < pos["24"], "base < pred < score")
  t.eq(plan.root, "10")
  t.eq(#plan.folders, 3, "three folder levels below the root")
  t.eq(plan.folders[1][1].name, "A")
end)

t.test("unsupported types are listed as skipped", function()
  local plan = R.plan(sample())
  t.eq(#plan.skipped, 1)
  t.eq(plan.skipped[1].type, "funnel")
  t.eq(plan.skipped[1].name, "f")
end)

t.test("references are found and rewritten at every depth, predictive segmentId too", function()
  local attrs = { rule = nest(6, { type = "And", conditions = { ref("1"), ref("2", "PredictiveScoreReference") } }), segmentId = "3" }
  t.eq(R.references(attrs), { "1", "2", "3" })
  local out, changes = R.rewrite(attrs, { ["1"] = "100", ["2"] = "200", ["3"] = "300" })
  t.eq(R.references(out), { "100", "200", "300" })
  t.eq(#changes, 3)
  t.eq(R.references(attrs), { "1", "2", "3" }, "the original is unchanged")
end)

t.test("a reference outside the backup is an error naming the segment", function()
  local b = backup({ folder("10", "Root"), seg("20", "lonely", "10", nest(3, ref("999"))) })
  local msg = t.raises(function() R.plan(b) end, "segment 'lonely'")
  t.contains(msg, "999")
  t.ok(not msg:find("None"), "never None")
end)

t.test("a reference to an unrestorable type is an error naming both", function()
  local b = backup({ folder("10", "Root"), seg("20", "uses funnel", "10", ref("27")),
    { id = "27", type = "funnel", attributes = { name = "f" }, relationships = { parentFolder = { data = { id = "10" } } } } })
  t.raises(function() R.plan(b) end, "segment 'uses funnel'")
end)

t.test("reference cycles are reported with the segments' names", function()
  local b = backup({ folder("10", "Root"), seg("20", "a", "10", ref("21")), seg("21", "b", "10", nest(2, ref("20"))) })
  local msg = t.raises(function() R.plan(b) end, "cycle")
  t.contains(msg, "'a'")
  t.contains(msg, "'b'")
end)

t.test("only_segments restores a subset plus what it references and the folders above", function()
  local plan = R.plan(sample(), { only = { "score" } })
  local ids = {}
  for _, level in ipairs(plan.levels) do for _, e in ipairs(level) do ids[#ids + 1] = e.id end end
  table.sort(ids)
  t.eq(ids, { "20", "23", "24" })
  local names = {}
  for _, level in ipairs(plan.folders) do for _, f in ipairs(level) do names[#names + 1] = f.name end end
  table.sort(names)
  t.eq(names, { "A", "B", "C", "Side" })
  t.raises(function() R.plan(sample(), { only = { "nope" } }) end, "no segment named")
end)

t.test("clean_parent_segment drops server-assigned fields and renames", function()
  local b = R.clean_parent_segment(sample().ms_config, "new")
  t.eq(b.name, "new")
  t.eq(b.id, nil); t.eq(b.population, nil); t.eq(b.createdAt, nil); t.eq(b.createdBy, nil)
  t.eq(b.attributes[1].audienceId, nil)
  local a = R.clean_attributes({ name = "x", population = 3, createdAt = "y", audienceId = "1", rule = {} }, "9")
  t.eq(a, { name = "x", audienceId = "9", rule = {} })
end)

t.test("endpoints: regions, hosts and URLs", function()
  t.eq(td.resolve_endpoint("EU"), { rest = "https://api.eu01.treasuredata.com", cdp = "https://api-cdp.eu01.treasuredata.com" })
  t.eq(td.resolve_endpoint("jp").cdp, "https://api-cdp.treasuredata.co.jp")
  t.eq(td.resolve_endpoint("AP03").rest, "https://api.ap03.treasuredata.com")
  t.eq(td.resolve_endpoint("https://api.treasuredata.com").cdp, "https://api-cdp.treasuredata.com")
  t.eq(td.resolve_endpoint("api.eu01.treasuredata.com").cdp, "https://api-cdp.eu01.treasuredata.com")
  t.eq(td.resolve_endpoint("api-cdp.ap02.treasuredata.com").rest, "https://api.ap02.treasuredata.com")
  t.eq(td.resolve_endpoint("http://127.0.0.1:8080/"), { rest = "http://127.0.0.1:8080", cdp = "http://127.0.0.1:8080" })
  t.eq(td.status_of("Treasure Data GET /audiences/1 answered 401: bad key"), 401)
end)

t.test("uncertain: a 5xx or no answer may have been applied, a 4xx was not", function()
  t.eq(td.uncertain("Treasure Data POST /entities/segments answered 502: Bad Gateway"), true)
  t.eq(td.uncertain("Treasure Data POST /audiences got no answer: error sending request"), true)
  t.eq(td.uncertain("Treasure Data POST /entities/folders answered 400: Name has already been taken"), false)
  t.eq(td.uncertain("Treasure Data POST /audiences answered 429: rate limit exceeded"), false)
  t.eq(td.uncertain("td: cannot create entities of type funnel"), false)
end)

-- A client double keeping entities in memory, failing after `fail_after` creations.
local function fake_client(fail_after)
  local c = { next = 100, made = {}, creations = 0 }
  function c:create_entity(e)
    if fail_after and self.creations >= fail_after then error("Treasure Data POST x answered 500: boom", 0) end
    local parent = e.relationships.parentFolder.data.id
    for _, m in pairs(self.dup_ok and {} or self.made) do
      if R.parent_of(m) == parent and m.attributes.name == e.attributes.name then
        error("Treasure Data POST x answered 400: Name has already been taken", 0)
      end
    end
    self.next = self.next + 1
    self.creations = self.creations + 1
    local m = R.deep_copy(e); m.id = tostring(self.next)
    self.made[m.id] = m
    return m
  end
  function c:create_folder(parent, attrs)
    return self:create_entity({ type = "folder-segment", attributes = attrs,
      relationships = { parentFolder = { data = { id = parent } } } })
  end
  function c:by_folder_raw(id)
    local data = {}
    for _, m in pairs(self.made) do if R.parent_of(m) == id then data[#data + 1] = m end end
    return { data = data }
  end
  return c
end

t.test("a restore that fails halfway resumes without duplicates", function()
  local b = sample()
  local state = { map = {} }
  local saved
  local c = fake_client(6)
  t.raises(function()
    R.restore_entities({ client = c, plan = R.plan(b), state = state, save = function(s) saved = json.encode(s) end,
      new_root = "1", audience_id = "9", concurrency = 2 })
  end, "boom")
  c.creations = -1000 -- the service recovers
  -- a re-run starts from the saved state (a fresh process would load it)
  local state2 = json.decode(saved)
  local r = R.restore_entities({ client = c, plan = R.plan(b), state = state2, save = function() end,
    new_root = "1", audience_id = "9", concurrency = 2 })
  local n = 0
  for _ in pairs(c.made) do n = n + 1 end
  t.eq(n, 4 + 7, "4 folders and 7 segments, each once")
  t.ok(r.kept + r.created + #r.conflicts >= 1)
  -- references point at the new ids
  for _, m in pairs(c.made) do
    for _, id in ipairs(R.references(m.attributes)) do t.ok(c.made[id], "reference " .. id .. " is a new entity") end
  end
end)

t.test("losing the saved map still gives no duplicates (identical entities are adopted)", function()
  local b = sample()
  local c = fake_client()
  R.restore_entities({ client = c, plan = R.plan(b), state = { map = {} }, save = function() end, new_root = "1", audience_id = "9" })
  local r = R.restore_entities({ client = c, plan = R.plan(b), state = { map = {} }, save = function() end, new_root = "1", audience_id = "9" })
  local n = 0
  for _ in pairs(c.made) do n = n + 1 end
  t.eq(n, 11)
  t.eq(r.created, 0)
  t.eq(r.folders_reused, 4)
end)

t.test("on_conflict=suffix creates a renamed copy when a different segment has the name", function()
  local b = sample()
  local c = fake_client()
  R.restore_entities({ client = c, plan = R.plan(b), state = { map = {} }, save = function() end, new_root = "1", audience_id = "9" })
  -- change a backed-up rule, so the existing 'empty' is not ours
  for _, e in ipairs(b.all_segments_config.data) do if e.attributes.name == "empty" then e.attributes.rule = { type = "Or" } end end
  local r = R.restore_entities({ client = c, plan = R.plan(b), state = { map = {} }, save = function() end,
    new_root = "1", audience_id = "9", on_conflict = "suffix" })
  t.eq(#r.conflicts, 1)
  t.contains(r.conflicts[1].action, "empty (2)")
end)

t.test("describe lists folders, steps with rewritten references, and skips", function()
  local lines = R.describe(R.plan(sample()))
  local text = table.concat(lines, "\n")
  t.contains(text, "folder create 'A'")
  t.contains(text, "rewriting references 20")
  t.contains(text, "skip funnel 'f'")
end)

t.test("intents saved by a run that crashed are looked up before creating, even where names may repeat", function()
  local b = sample()
  local c = fake_client(4 + 3) -- the folders and the first level of segments, then the process "dies"
  local crashed -- the state as saved just before the first level of segments was created
  t.raises(function()
    R.restore_entities({ client = c, plan = R.plan(b), state = { map = {} }, new_root = "1", audience_id = "9",
      save = function(s) if not crashed and next(s.intents or {}) then crashed = json.encode(s) end end })
  end, "boom")
  c.creations = -1000
  local state = json.decode(crashed)
  local pending = 0
  for _ in pairs(state.intents) do pending = pending + 1 end
  t.ok(pending > 0, "intents were saved before the creates")
  c.dup_ok = true -- a service that would accept a second entity of the same name
  local r = R.restore_entities({ client = c, plan = R.plan(b), state = state, save = function() end,
    new_root = "1", audience_id = "9" })
  local n = 0
  for _ in pairs(c.made) do n = n + 1 end
  t.eq(n, 11, "nothing made twice")
  t.eq(r.adopted, pending)
  t.eq(next(state.intents), nil, "every intent resolved")
end)
