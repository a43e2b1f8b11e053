--[[
  workflow_stop: a workflow that has not ended -> CANCELLED, by a person: every unfinished
  member is CANCELED at once when waiting, or asked to stop when running (its executor
  confirms with cancel.lua, and the workflow ends when the last one has); each goes on
  Stand's `stop` list. Stopping an ended workflow changes nothing and answers its status.
  Locks are not consulted: a member's lock freezes the job, not its workflow.

  KEYS[1] workflow hash   workflow_W

  ARGV[1] key prefix
  ARGV[2] workflow id     W

  Returns:
    {1, status}   CANCELLED, or the status it had already ended with (COMPLETED, CANCELLED)
    {-1}          no such workflow (or it has expired)   (404)

  Event: canceled or stop_requested, per unfinished member
]]
local wf_key = KEYS[1]
local prefix, wf = ARGV[1], ARGV[2]
--- @include "includes/workflow"

local w = redis.call('HMGET', wf_key, unpack(WORKFLOW_FIELDS))
if not w[1] then return {-1} end
if w[7] then return {1, w[1]} end
local at = rfc3339(now_ms())
redis.call('HSET', wf_key, 'status', 'CANCELLED', 'updated', at)
redis.call('HSETNX', wf_key, 'stopped', at)
local done = workflow_cancel(prefix, wf_key, workflow_ids(w[2]), nil,
  'workflow ' .. wf .. ' stopped', at, w[6])
workflow_settle(prefix, wf_key, w, done, at)
return {1, 'CANCELLED'}
