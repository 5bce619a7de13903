-- hello: the smallest bundled procedure; shows how a script declares params and returns a result.
local time = require("rewind.time")
local log = require("rewind.log")

return {
  description = "Greet someone and report the time (a trivial script that exercises the host)",
  params = {
    name = { type = "string", default = "world", doc = "who to greet" },
    times = { type = "integer", default = 1, doc = "how many greetings to return" },
  },
  run = function(p)
    local greetings = {}
    for i = 1, p.times do
      greetings[i] = "hello, " .. p.name
    end
    log.info("greeted", { name = p.name, times = p.times })
    return { greetings = greetings, at = time.format(time.now()) }
  end,
}
