--[[
  lock: freezes a job in any status (Stand's editing lock): stop and retry are refused until
  unlock. Locking a job already locked fails unless forced.

  KEYS[1] job hash        job_N
  KEYS[2] events stream   events

  ARGV[1] key prefix
  ARGV[2] job id          N
  ARGV[3] holder          text naming who locks (Stand: JSON {user, computer, date})
  ARGV[4] force           1 = take the lock even if held

  Returns:
    {1, status}                        locked
    {-1}                               no such job          (404)
    {-2, status, holder, locked_at}    already locked       (409)

  Event: locked
]]
local job_key, events_key = KEYS[1], KEYS[2]
local prefix, id, holder, force = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
--- @include "includes/emit"

local f = redis.call('HMGET', job_key, 'status', 'locked', 'locked_at', 'executor')
if not f[1] then return {-1} end
if f[2] and f[2] ~= '' and not force then return {-2, f[1], f[2], f[3] or ''} end
local at = rfc3339(now_ms())
redis.call('HSET', job_key, 'locked', holder, 'locked_at', at, 'updated', at)
emit(prefix, id, f[4], 'locked', f[1], 'holder', holder)
return {1, f[1]}
