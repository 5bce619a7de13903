local t = require("rewind.testing")
local layout = require("rewind.archive_layout")

local function day(preset, vars)
  return layout.day_prefix(layout.template(preset), "2019-12-01", vars)
end

t.test("the layout presets name one day's folder", function()
  t.eq(day(nil, { prefix = "kafka/events" }), "kafka/events/2019-12-01/")
  t.eq(day("topic-archive", { prefix = "raw" }), "raw/2019-12-01/")
  t.eq(day("daily", { prefix = "raw" }), "raw/2019/12/01/")
  t.eq(day("secor", { prefix = "secor/events" }), "secor/events/dt=2019-12-01/")
  t.eq(day("kafka-connect", { prefix = "sink", topic = "events" }),
    "sink/topics/events/year=2019/month=12/day=01/")
  -- An empty prefix collapses instead of leaving a leading '/'.
  t.eq(day("daily", { prefix = "" }), "2019/12/01/")
  t.eq(layout.day_prefix("{prefix}/x/{yyyy-MM-dd}", "2020-02-29", { prefix = "a" }), "a/x/2020-02-29")
end)

t.test("a bad layout is an error naming it", function()
  t.raises(function() layout.template("hourly") end, "neither a preset")
  t.raises(function() layout.template("{prefix}/{yyyy}/{week}/") end, "{week}")
  t.raises(function() layout.template("{prefix}/{topic}/") end, "names no day")
end)
