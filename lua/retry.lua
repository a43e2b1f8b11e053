--[[
  retry: FAILED, CANCELED or TIMED_OUT -> PENDING, a fresh start asked for by a person: the
  attempt count starts again, the error and result are cleared, and the job (and its state
  history) no longer expires. A workflow member is not retried alone (its workflow has moved
  on without it): it is refused as an illegal move.

  KEYS[1] job hash        job_N
  KEYS[2] events stream   events

  ARGV[1] key prefix
  ARGV[2] job id          N

  Returns:
    {1, 'PENDING'}   queued again
    {-1}             no such job (or it has expired)           (404)
    {-2, status, holder, since} the job is locked                         (409)
    {-3, status}     illegal move: the job has not ended badly, or is a workflow member (409)

  Event: retried
]]
--- @include "includes/keys"
local job_key, events_key = KEYS[1], KEYS[2]
local prefix, id = ARGV[1], ARGV[2]
--- @include "includes/emit"
--- @include "includes/enqueue"
--- @include "includes/index"

local f = redis.call('HMGET', job_key, 'status', 'locked', 'executor', 'locked_at', 'workflow')
local status = f[1]
if not status then return {-1} end
if f[2] and f[2] ~= '' then return {-2, status, f[2], f[4] or ''} end
if f[5] or (status ~= 'FAILED' and status ~= 'CANCELED' and status ~= 'TIMED_OUT') then
  return {-3, status}
end
local at = rfc3339(now_ms())
redis.call('PERSIST', job_key)
redis.call('PERSIST', key_history(prefix, id))
redis.call('HDEL', job_key, 'error', 'result', 'finished', 'lease_token', 'worker',
  'progress', 'stop_requested')
redis.call('HSET', job_key, 'status', 'PENDING', 'attempt', 0, 'updated', at)
enqueue(prefix, id, f[3], false)
index_revived(prefix, id, f[3], status)
emit(prefix, id, f[3], 'retried', 'PENDING')
return {1, 'PENDING'}
