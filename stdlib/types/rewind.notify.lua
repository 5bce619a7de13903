---@meta
-- rewind.notify: notifications (Slack incoming webhooks).

local M = {}

--- Posts `{"text": message}` to a Slack incoming webhook. The URL is treated as a secret; Slack's error
--- answers (400 invalid_payload, 403 action_prohibited, 404 channel_not_found, 410 channel_is_archived,
--- 500 rollup_error) are raised as clear errors without the URL.
---@param webhook string the webhook URL (a secret)
---@param message string
---@return boolean ok
function M.slack(webhook, message) end

return M
