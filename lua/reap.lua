--[[
  reap: RUNNING -> PENDING (at the head of its queue), FAILED (lost too often) or CANCELED
  (stop requested) for every job whose lease has expired: its executor died, hung or was cut
  off. An executor's death is not the job's failure: the run does not spend an attempt (as
  release.lua hands a job back), it only counts in `lost`. A job that has lost its executor
  more than `max lost` times fails for good: it is probably what kills them (a poison job).
  Safe to run from any number of processes at once; each expired lease is handled once.

  KEYS[1] leases zset     leases
  KEYS[2] delayed zset    delayed
  KEYS[3] events stream   events
  KEYS[4] executors zset  executors (presence.lua)

  ARGV[1] key prefix
  ARGV[2] count           most expired leases to handle in one call
  ARGV[3] max lost        runs a job may lose before it fails (max_lost_leases)
  ARGV[4] presence ttl    ms: an executor silent this long has vanished

  First, executors that stopped calling presence.lua (killed, host gone, paused past the
  ttl) leave `executors`, and the leases of their running jobs end now, so this same call
  hands them back: a vanished executor's jobs wait seconds, not a lease. This reads every
  running job's `worker` (O(running)), only when an executor has vanished. A paused
  executor that comes back finds its lease tokens stale, as after any lost lease.

  Returns:
    {1, requeued, failed, canceled}

  Event: lost (back to PENDING), failed or canceled (error "lease expired ...")
]]
--- @include "includes/keys"
local leases_key, delayed_key, events_key, executors_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, count, max_lost = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local presence_ttl = tonumber(ARGV[4])
--- @include "includes/end_attempt"

local now = now_ms()
local at = rfc3339(now)
local gone = redis.call('ZRANGEBYSCORE', executors_key, '-inf', now - presence_ttl)
if #gone > 0 then
  local dead = {}
  for _, worker in ipairs(gone) do
    dead[worker] = true
    redis.call('ZREM', executors_key, worker)
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases_key, '(' .. now, '+inf')) do
    if dead[redis.call('HGET', key_job(prefix, id), 'worker')] then
      redis.call('ZADD', leases_key, now, id)
    end
  end
end
local requeued, failed, canceled = 0, 0, 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases_key, '-inf', now, 'LIMIT', 0, count)) do
  local job_key = key_job(prefix, id)
  local f = redis.call('HMGET', job_key, 'status', 'stop_requested', 'attempt', 'worker',
    'executor')
  if f[1] ~= 'RUNNING' then
    redis.call('ZREM', leases_key, id)  -- the hash expired or moved on: nothing to recover
  elseif f[2] then
    emit(prefix, id, f[5], 'canceled', 'CANCELED')
    finish(job_key, leases_key, prefix, id, 'CANCELED', at, nil)
    canceled = canceled + 1
  else
    local lost = redis.call('HINCRBY', job_key, 'lost', 1)
    local err = 'lease expired on attempt ' .. (f[3] or '?') .. ' (worker ' .. (f[4] or '?')
      .. ')'
    if lost > max_lost then
      err = err .. '; lost its executor ' .. lost .. ' times, more than max_lost_leases ('
        .. max_lost .. '): it may be what kills them'
      end_attempt(job_key, leases_key, delayed_key, prefix, id, 'FAILED', err,
        false, now)
      failed = failed + 1
    else
      redis.call('ZREM', leases_key, id)
      free_slot(prefix, job_key)
      redis.call('HINCRBY', job_key, 'attempt', -1)
      redis.call('HSET', job_key, 'status', 'PENDING', 'updated', at, 'error', err)
      redis.call('HDEL', job_key, 'lease_token', 'worker')
      enqueue(prefix, id, f[5], true)
      emit(prefix, id, f[5], 'lost', 'PENDING', 'error', err)
      requeued = requeued + 1
    end
  end
end
return {1, requeued, failed, canceled}
