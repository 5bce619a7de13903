-- rewind.encryption: the params of client-side age encryption, shared by the procedures that open a
-- store (backup-dir, restore-dir, verify, prune, snapshots, ls, diff, find), and the store.open that
-- uses them. Without the params the environment applies (REWIND_RECIPIENTS, REWIND_IDENTITY,
-- REWIND_PASSPHRASE), so every other procedure is covered by it.
--
--   local encryption = require("rewind.encryption")
--   params = encryption.params({ prefix = {...}, store = {...} })
--   run = function(p) local s = encryption.open(p) ... end
local store = require("rewind.store")
local errors = require("rewind.errors")

local M = {}

-- Adds encrypt, identity and passphrase to a params table (returned).
function M.params(params)
  params.encrypt = { type = "string", doc = "encrypt every object written with age: recipients (age1... public keys, comma-separated, or a file of them, one a line), or the word passphrase to use passphrase=; default: REWIND_RECIPIENTS" }
  params.identity = { type = "string", doc = "file of age identities (AGE-SECRET-KEY-1... lines) to read encrypted objects; default: REWIND_IDENTITY" }
  params.passphrase = { type = "string", secret = true, env = "REWIND_PASSPHRASE", doc = "age passphrase (scrypt) to encrypt with (encrypt=passphrase) and to read encrypted objects" }
  return params
end

-- The store.open options of those params.
function M.opts(p)
  local o = {}
  if p.encrypt == "passphrase" then
    if not p.passphrase then errors.usage("encrypt=passphrase needs passphrase= (or REWIND_PASSPHRASE)") end
  elseif p.encrypt then
    o.recipients = p.encrypt
  end
  o.identity = p.identity
  o.passphrase = p.passphrase
  return o
end

-- Whether the store of p is opened with keys (params or environment): what is read from it is then
-- not to be kept in clear on local disk (prune's manifest cache is off).
function M.active(p)
  local env = require("rewind.env")
  return (p.encrypt or p.identity or p.passphrase or env.get("REWIND_RECIPIENTS") or env.get("REWIND_IDENTITY")
    or env.get("REWIND_PASSPHRASE")) ~= nil
end

-- Opens the store of p.store (nil: the default one) with the encryption of p.
function M.open(p)
  return store.open(p.store, M.opts(p))
end

return M
