--[[
  promote: SCHEDULED -> PENDING for every delayed job that is due (run_at reached or retry
  backoff over). A held job (a multipart submit whose files never all arrived: its API
  server died mid-upload) is CANCELED at its deadline instead. Safe to run from any number
  of processes at once.

  KEYS[1] delayed zset    delayed
  KEYS[2] events stream   events

  ARGV[1] key prefix
  ARGV[2] count           most due jobs to move in one call

  Returns:
    {1, promoted}

  Event: promoted (canceled for a held job)
]]
local delayed_key, events_key = KEYS[1], KEYS[2]
local prefix, count = ARGV[1], tonumber(ARGV[2])
--- @include "includes/finish"

local now = now_ms()
local at = rfc3339(now)
local promoted = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, count)) do
  redis.call('ZREM', delayed_key, id)
  local job_key = key_job(prefix, id)
  local f = redis.call('HMGET', job_key, 'status', 'executor', 'held')
  if f[1] == 'SCHEDULED' and f[3] then
    emit(prefix, id, f[2], 'canceled', 'CANCELED')
    finish(job_key, key_of(prefix, 'leases'), prefix, id, 'CANCELED', at, nil,
      'error', 'its files did not finish uploading before the hold deadline')
  elseif f[1] == 'SCHEDULED' then
    redis.call('HSET', job_key, 'status', 'PENDING', 'updated', at)
    enqueue(prefix, id, f[2], false)
    emit(prefix, id, f[2], 'promoted', 'PENDING')
    promoted = promoted + 1
  end
end
return {1, promoted}
