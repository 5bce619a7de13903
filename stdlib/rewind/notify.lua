-- rewind.notify: tell people how a job went.
--
--   local notify = require("rewind.notify")
--   notify.slack(env.get("SLACK_WEBHOOK"), "backup done")
--
-- The webhook URL is a secret: it is registered for redaction and never appears in errors or logs.

local http = require("rewind.http")
local env = require("rewind.env")

local M = {}

-- Slack's plain-text error answers (api-notes.md) and what they mean for the sender.
local SLACK_ERRORS = {
  invalid_payload = "Slack rejected the message as malformed (invalid_payload)",
  action_prohibited = "the webhook is not allowed to post here (action_prohibited): an admin restricted it",
  channel_not_found = "the webhook's channel does not exist (channel_not_found): the webhook is stale, create a new one",
  channel_is_archived = "the webhook's channel is archived (channel_is_archived)",
  rollup_error = "Slack failed on its side (rollup_error); try again later",
}

--- Posts `message` to a Slack incoming webhook. Raises a clear error (without the URL) when Slack refuses.
function M.slack(webhook, message)
  if type(webhook) ~= "string" or webhook == "" then
    error("notify.slack: the webhook URL is missing", 2)
  end
  env.mark_secret(webhook)
  local res = http.post(webhook, { json = { text = tostring(message) }, check = false, retries = 0, timeout = "10s" })
  if res.status == 200 then
    return true
  end
  local body = (res.body or ""):gsub("%s+$", "")
  local why = SLACK_ERRORS[body] or ("Slack answered: " .. body)
  error(string.format("Slack webhook answered %d: %s", res.status, why), 0)
end

return M
