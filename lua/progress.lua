--[[
  progress: RUNNING -> RUNNING, records the attempt's progress (a JSON text).

  KEYS[1] job hash        job_N
  KEYS[2] events stream   events

  ARGV[1] key prefix
  ARGV[2] job id          N
  ARGV[3] lease token     handed out by claim
  ARGV[4] progress        JSON text, e.g. {"count":2,"k":5}

  Returns:
    {1}           recorded
    {2}           recorded, and a stop was requested: the executor must stop the job
    {-1}          no such job                          (404)
    {-3, status}  illegal move: status is not RUNNING  (409)
    {-6, status}  stale lease token                    (409)

  Event: progress
]]
local job_key, events_key = KEYS[1], KEYS[2]
local prefix, id, token, progress = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
--- @include "includes/emit"
--- @include "includes/check_lease"

local refused, f = check_lease(job_key, token, 'executor')
if refused then return refused end
local at = rfc3339(now_ms())
redis.call('HSET', job_key, 'progress', progress, 'updated', at)
emit(prefix, id, f[3], 'progress', 'RUNNING', 'progress', progress)
if redis.call('HEXISTS', job_key, 'stop_requested') == 1 then return {2} end
return {1}
