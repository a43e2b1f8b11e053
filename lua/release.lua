--[[
  release: RUNNING -> PENDING at the head of its queue, by the attempt that holds the lease,
  when its executor shuts down gracefully. The attempt is not counted. A job whose stop was
  requested is canceled instead.

  KEYS[1] job hash        job_N
  KEYS[2] leases zset     leases
  KEYS[3] events stream   events

  ARGV[1] key prefix
  ARGV[2] job id          N
  ARGV[3] lease token     handed out by claim

  Returns:
    {1, status}   PENDING (handed back) or CANCELED (its stop was requested)
    {-1}          no such job                          (404)
    {-3, status}  illegal move: status is not RUNNING  (409)
    {-6, status}  stale lease token                    (409)

  Event: released or canceled
]]
local job_key, leases_key, events_key = KEYS[1], KEYS[2], KEYS[3]
local prefix, id, token = ARGV[1], ARGV[2], ARGV[3]
--- @include "includes/finish"
--- @include "includes/check_lease"

local refused, f = check_lease(job_key, token, 'executor')
if refused then return refused end
local at = rfc3339(now_ms())
if redis.call('HEXISTS', job_key, 'stop_requested') == 1 then
  emit(prefix, id, f[3], 'canceled', 'CANCELED')
  finish(job_key, leases_key, prefix, id, 'CANCELED', at, nil)
  return {1, 'CANCELED'}
end
redis.call('ZREM', leases_key, id)
free_slot(prefix, job_key)
redis.call('HINCRBY', job_key, 'attempt', -1)
redis.call('HSET', job_key, 'status', 'PENDING', 'updated', at)
redis.call('HDEL', job_key, 'lease_token', 'worker')
enqueue(prefix, id, f[3], true)
emit(prefix, id, f[3], 'released', 'PENDING')
return {1, 'PENDING'}
