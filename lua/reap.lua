--[[
  reap: RUNNING -> PENDING (attempts left), FAILED (none left) or CANCELED (stop requested)
  for every job whose lease has expired: its executor died, hung or was cut off. Safe to run
  from any number of processes at once; each expired lease is handled exactly once.

  KEYS[1] leases zset     leases
  KEYS[2] delayed zset    delayed
  KEYS[3] events stream   events

  ARGV[1] key prefix
  ARGV[2] count           most expired leases to handle in one call

  Returns:
    {1, requeued, failed, canceled}

  Event: retried, failed or canceled (error "lease expired ...")
]]
local leases_key, delayed_key, events_key = KEYS[1], KEYS[2], KEYS[3]
local prefix, count = ARGV[1], tonumber(ARGV[2])
--- @include "includes/time"
--- @include "includes/emit"
--- @include "includes/enqueue"
--- @include "includes/workflow"
--- @include "includes/finish"
--- @include "includes/end_attempt"

local now = now_ms()
local requeued, failed, canceled = 0, 0, 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases_key, '-inf', now, 'LIMIT', 0, count)) do
  local job_key = prefix .. 'job_' .. id
  local f = redis.call('HMGET', job_key, 'status', 'stop_requested', 'attempt', 'worker',
    'executor')
  if f[1] ~= 'RUNNING' then
    redis.call('ZREM', leases_key, id)  -- the hash expired or moved on: nothing to recover
  elseif f[2] then
    emit(events_key, id, f[5], 'canceled', 'CANCELED')
    finish(job_key, leases_key, prefix, id, 'CANCELED', rfc3339(now), nil)
    canceled = canceled + 1
  else
    local err = 'lease expired on attempt ' .. (f[3] or '?') .. ' (worker ' .. (f[4] or '?') .. ')'
    local status = end_attempt(job_key, leases_key, delayed_key, events_key, prefix, id,
      'FAILED', err, true, now)
    if status == 'FAILED' then failed = failed + 1 else requeued = requeued + 1 end
  end
end
return {1, requeued, failed, canceled}
