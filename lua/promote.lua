--[[
  promote: SCHEDULED -> PENDING for every delayed job that is due (run_at reached or retry
  backoff over). Safe to run from any number of processes at once.

  KEYS[1] delayed zset    delayed
  KEYS[2] events stream   events

  ARGV[1] key prefix
  ARGV[2] count           most due jobs to move in one call

  Returns:
    {1, promoted}

  Event: promoted
]]
--- @include "includes/keys"
local delayed_key, events_key = KEYS[1], KEYS[2]
local prefix, count = ARGV[1], tonumber(ARGV[2])
--- @include "includes/emit"
--- @include "includes/enqueue"

local now = now_ms()
local at = rfc3339(now)
local promoted = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, count)) do
  redis.call('ZREM', delayed_key, id)
  local job_key = key_job(prefix, id)
  local f = redis.call('HMGET', job_key, 'status', 'executor')
  if f[1] == 'SCHEDULED' then
    redis.call('HSET', job_key, 'status', 'PENDING', 'updated', at)
    enqueue(prefix, id, f[2], false)
    emit(prefix, id, f[2], 'promoted', 'PENDING')
    promoted = promoted + 1
  end
end
return {1, promoted}
