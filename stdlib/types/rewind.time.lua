---@meta
-- rewind.time: times are numbers of seconds since the Unix epoch (UTC), so they compare and subtract
-- like numbers.

---@class rewind.time.Parts
---@field year integer
---@field month integer
---@field day integer
---@field hour integer
---@field minute integer
---@field second integer
---@field weekday integer  1 = Monday
---@field yday integer
---@field iso_year integer
---@field iso_week integer

local M = {}

---The current time (UTC), seconds since the epoch with a fraction.
---@return number
function M.now() end

---Seconds since an arbitrary fixed point; for measuring elapsed time.
---@return number
function M.monotonic() end

---Formats a time: RFC 3339 by default, else a strftime format such as "%Y%m%d" or "%H%M%S".
---@param t number
---@param fmt? string
---@param tz? string IANA name; UTC by default
---@return string
function M.format(t, fmt, tz) end

---Parses RFC 3339, "2019-12-01", "20191201", or the given strftime format (UTC).
---@param text string
---@param fmt? string
---@return number
function M.parse(text, fmt) end

---"YYYY-MM-DD" of a time, in UTC.
---@param t number
---@return string
function M.date(t) end

---Calendar fields of a time.
---@param t number
---@param tz? string
---@return rewind.time.Parts
function M.parts(t, tz) end

---Seconds in a duration like "10m", "1h30m", "2d"; numbers pass through.
---@param d string|number
---@return number
function M.duration(d) end

---A human-readable duration ("1h 30m").
---@param secs number
---@return string
function M.format_duration(secs) end

---Iterates over the days from `from` to `to`, both included, as "YYYY-MM-DD" strings.
---@param from string
---@param to string
---@return fun(): string|nil
function M.days(from, to) end

return M
