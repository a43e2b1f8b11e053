--[[
  unlock: lifts the lock of lock.lua. Unlocking a job that is not locked succeeds.

  KEYS[1] job hash        job_N
  KEYS[2] events stream   events

  ARGV[1] key prefix
  ARGV[2] job id          N

  Returns:
    {1, status}   unlocked (or was not locked)
    {-1}          no such job   (404)

  Event: unlocked
]]
local job_key, events_key = KEYS[1], KEYS[2]
local prefix, id = ARGV[1], ARGV[2]
--- @include "includes/emit"

local f = redis.call('HMGET', job_key, 'status', 'executor')
local status = f[1]
if not status then return {-1} end
if redis.call('HDEL', job_key, 'locked', 'locked_at') > 0 then
  local at = rfc3339(now_ms())
  redis.call('HSET', job_key, 'updated', at)
  emit(prefix, id, f[2], 'unlocked', status)
end
return {1, status}
