local t = require("rewind.testing")
local time = require("rewind.time")

t.test("RFC 3339 parse and format", function()
  local ts = time.parse("2019-12-01T10:20:30Z")
  t.eq(ts, 1575195630)
  t.eq(time.format(ts), "2019-12-01T10:20:30Z")
  t.eq(time.parse("2019-12-01T12:20:30+02:00"), ts)
  t.eq(time.format(ts + 0.25), "2019-12-01T10:20:30.250Z")
  t.eq(time.parse("2019-12-01"), 1575158400)
  t.eq(time.format(ts, nil, "Asia/Tokyo"), "2019-12-01T19:20:30+09:00")
end)

t.test("%Y%m%d and %H%M%S, as snapshot keys use them", function()
  local ts = time.parse("2019-12-01T03:04:05Z")
  t.eq(time.format(ts, "%Y%m%d"), "20191201")
  t.eq(time.format(ts, "%H%M%S"), "030405")
  t.eq(time.parse("20191201-030405", "%Y%m%d-%H%M%S"), ts)
  t.eq(time.parse("20191201", "%Y%m%d"), time.parse("2019-12-01"))
  t.eq(time.parse("20191201"), time.parse("2019-12-01"))
  t.eq(time.date(ts), "2019-12-01")
end)

t.test("now is UTC and current", function()
  t.ok(math.abs(time.now() - os.time()) < 5)
  t.contains(time.format(time.now()), "Z")
  local a = time.monotonic()
  t.ok(time.monotonic() >= a)
end)

t.test("parts", function()
  local p = time.parts(time.parse("2019-12-01T10:20:30Z"))
  t.eq({ p.year, p.month, p.day, p.hour, p.minute, p.second, p.weekday, p.iso_week },
    { 2019, 12, 1, 10, 20, 30, 7, 48 })
end)

t.test("durations", function()
  t.eq(time.duration("10m"), 600)
  t.eq(time.duration("1h30m"), 5400)
  t.eq(time.duration("2d"), 172800)
  t.eq(time.duration("90s"), 90)
  t.eq(time.duration(5), 5)
  t.eq(time.duration("1.5"), 1.5)
  t.raises(function() time.duration("ten minutes") end, "expected a duration")
  t.raises(function() time.duration("-5m") end, "expected a duration")
  t.eq(time.format_duration(5400), "1h 30m")
end)

t.test("days() covers both ends", function()
  local got = {}
  for d in time.days("2019-12-30", "2020-01-02") do got[#got + 1] = d end
  t.eq(got, { "2019-12-30", "2019-12-31", "2020-01-01", "2020-01-02" })
  got = {}
  for d in time.days("2020-02-28", "2020-03-01") do got[#got + 1] = d end
  t.eq(got, { "2020-02-28", "2020-02-29", "2020-03-01" })
  got = {}
  for d in time.days("2019-12-01", "2019-12-01") do got[#got + 1] = d end
  t.eq(got, { "2019-12-01" })
end)

t.test("days() rejects bad input", function()
  t.raises(function() time.days("2019-12-05", "2019-12-01") end, "before start")
  t.raises(function() time.days("2019-13-01", "2019-12-01") end, "'2019-13-01' is not a date")
  t.raises(function() time.days("yesterday", "2019-12-01") end, "not a date")
end)

t.test("bad times and zones are clear errors", function()
  t.raises(function() time.parse("not a time") end, "cannot parse 'not a time'")
  t.raises(function() time.parse("2019-02-30") end, "cannot parse")
  t.raises(function() time.parse("x", "%Y%m%d") end, "with format")
  t.raises(function() time.format(0, nil, "Mars/Base") end, "unknown timezone")
end)
