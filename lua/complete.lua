--[[
  complete: RUNNING -> COMPLETED, for the attempt that holds the lease. The hash then expires
  after the job's result_ttl.

  KEYS[1] job hash        job_N
  KEYS[2] leases zset     leases
  KEYS[3] events stream   events

  ARGV[1] key prefix
  ARGV[2] job id          N
  ARGV[3] lease token     handed out by claim
  ARGV[4] result          MessagePack bytes

  Returns:
    {1}           completed
    {-1}          no such job                          (404)
    {-3, status}  illegal move: status is not RUNNING  (409)
    {-6, status}  stale lease token                    (409)

  Event: completed
]]
local job_key, leases_key, events_key = KEYS[1], KEYS[2], KEYS[3]
local prefix, id, token = ARGV[1], ARGV[2], ARGV[3]
--- @include "includes/finish"
--- @include "includes/check_lease"

local refused, f = check_lease(job_key, token, 'result_ttl', 'error',
  'executor')
if refused then return refused end
if f[4] then redis.call('HDEL', job_key, 'error') end
emit(prefix, id, f[5], 'completed', 'COMPLETED')
finish(job_key, leases_key, prefix, id, 'COMPLETED', rfc3339(now_ms()), f[3],
  'result', ARGV[4])
return {1}
