---@meta rewind.encryption
-- Client-side age encryption params shared by the store procedures.

---@class rewind.encryption
local M = {}

---Adds the params encrypt, identity and passphrase to a params table and returns it.
---@param params table<string, table>
---@return table<string, table>
function M.params(params) end

---The store.open options (recipients, identity, passphrase) of those params.
---@param p { encrypt?: string, identity?: string, passphrase?: string }
---@return table
function M.opts(p) end

---Whether keys are given (params or REWIND_RECIPIENTS/REWIND_IDENTITY/REWIND_PASSPHRASE).
---@param p { encrypt?: string, identity?: string, passphrase?: string }
---@return boolean
function M.active(p) end

---Opens p.store (nil: the default store) with the encryption of p.
---@param p { store?: string, encrypt?: string, identity?: string, passphrase?: string }
---@return rewind.Store
function M.open(p) end

return M
