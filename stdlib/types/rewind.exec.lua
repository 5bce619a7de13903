---@meta
-- rewind.exec: run programs with args and env, without a shell unless `shell=true`. A non-zero exit raises
-- an error carrying the last lines of stderr (unless `check=false`).

---@class rewind.exec.Spec
---@field [integer] string       program and arguments: {"pg_dump", "-Fc", "db"}
---@field cmd? string            the program (alternative to the first array item)
---@field args? string[]         more arguments
---@field env? table<string,string> extra environment variables
---@field clear_env? boolean     start from an empty environment
---@field cwd? string
---@field timeout? string|number  "30s", or seconds; the program is killed when it expires
---@field stdin? string|rewind.Reader
---@field shell? boolean         run the joined arguments with `sh -c`
---@field check? boolean         raise on a non-zero exit (default true)

---@class rewind.exec.Result
---@field status integer
---@field ok boolean
---@field stdout string
---@field stderr string

---A running program from `exec.spawn`.
---@class rewind.exec.Process
local Process = {}

---Its stdout as a reader (once).
---@return rewind.Reader
function Process:stdout() end

---Waits for the exit; raises on a non-zero exit (with the stderr tail) or on timeout.
---@return {status: integer, ok: boolean, stderr: string}
function Process:wait() end

---Kills the program.
function Process:kill() end

local M = {}

---Runs a program to completion and captures its output.
---@param spec rewind.exec.Spec
---@return rewind.exec.Result
function M.run(spec) end

---Starts a program whose stdout is a reader other primitives consume; call `p:wait()` afterwards.
---@param spec rewind.exec.Spec
---@return rewind.exec.Process
function M.spawn(spec) end

---The full path of a program on PATH, or nil.
---@param name string
---@return string|nil
function M.which(name) end

return M
