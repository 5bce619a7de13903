---@meta
-- rewind.testing: cases and assertions for `rewind test` (files named *_test.lua).

local M = {}

---Registers a test case; cases run as async functions (they may sleep, spawn or do I/O).
---@param name string
---@param fn fun()
function M.test(name, fn) end

---Asserts deep equality.
---@param actual any
---@param expected any
---@param msg? string
function M.eq(actual, expected, msg) end

---Asserts a truthy value; returns it.
---@generic T
---@param v T
---@param msg? string
---@return T
function M.ok(v, msg) end

---Asserts that `fn` raises an error containing `pattern` (plain text); returns the message.
---@param fn fun()
---@param pattern? string
---@param msg? string
---@return string
function M.raises(fn, pattern, msg) end

---Asserts that a string contains a plain substring.
---@param haystack string
---@param needle string
---@param msg? string
function M.contains(haystack, needle, msg) end

---A readable rendering of a value, for messages.
---@param v any
---@return string
function M.show(v) end

return M
