--[[
  Function to end a failed attempt (fail.lua, timeout.lua, reap.lua): retry when attempts are
  left and the error is retryable (after backoff * 2^(attempt-1) ms in the delayed set, or
  backoff * attempt when the job's backoff_mode is "linear" as wumai's try_period was, or
  straight back on the queue when backoff is 0), else end the job with `final_status`; a job
  whose stop was requested ends CANCELED instead, whatever the attempts left.
  Includes (transitively) time, emit, enqueue, finish.
  end_attempt(job_key, leases_key, delayed_key, prefix, id, final_status,
              error, retryable, now) -> new status
]]
--- @include "includes/time"
--- @include "includes/emit"
--- @include "includes/enqueue"
--- @include "includes/finish"
local function end_attempt(job_key, leases_key, delayed_key, prefix, id,
                           final_status, err, retryable, now)
  local at = rfc3339(now)
  free_slot(prefix, job_key)
  local f = redis.call('HMGET', job_key, 'attempt', 'max_attempts', 'backoff', 'executor',
    'backoff_mode', 'stop_requested')
  local attempt, max_attempts = tonumber(f[1]) or 0, tonumber(f[2]) or 1
  local backoff, executor = tonumber(f[3]) or 0, f[4]
  redis.call('HSET', job_key, 'error', err, 'updated', at)
  if f[6] then
    -- A stop was asked for: the attempt's end is the stop's, never a retry.
    emit(prefix, id, executor, 'canceled', 'CANCELED', 'error', err)
    finish(job_key, leases_key, prefix, id, 'CANCELED', at, nil)
    return 'CANCELED'
  end
  if retryable and attempt < max_attempts then
    redis.call('ZREM', leases_key, id)
    redis.call('HDEL', job_key, 'lease_token', 'worker')
    local delay = backoff * (2 ^ (attempt - 1))
    if f[5] == 'linear' then delay = backoff * attempt end
    if delay > 0 then
      local due = now + delay
      redis.call('HSET', job_key, 'status', 'SCHEDULED', 'run_at', rfc3339(due))
      redis.call('ZADD', delayed_key, due, id)
      emit(prefix, id, executor, 'retry_scheduled', 'SCHEDULED', 'error', err)
      return 'SCHEDULED'
    end
    redis.call('HSET', job_key, 'status', 'PENDING')
    enqueue(prefix, id, executor, false)
    emit(prefix, id, executor, 'retried', 'PENDING', 'error', err)
    return 'PENDING'
  end
  emit(prefix, id, executor, string.lower(final_status), final_status, 'error', err)
  finish(job_key, leases_key, prefix, id, final_status, at, nil)
  return final_status
end
