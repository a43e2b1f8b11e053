--[[
  cancel: RUNNING -> CANCELED, by the attempt that holds the lease, once it has killed the
  work because a stop was requested (stop.lua).

  KEYS[1] job hash        job_N
  KEYS[2] leases zset     leases
  KEYS[3] events stream   events

  ARGV[1] key prefix
  ARGV[2] job id          N
  ARGV[3] lease token     handed out by claim

  Returns:
    {1}           canceled
    {-1}          no such job                          (404)
    {-3, status}  illegal move: status is not RUNNING  (409)
    {-6, status}  stale lease token                    (409)

  Event: canceled
]]
local job_key, leases_key, events_key = KEYS[1], KEYS[2], KEYS[3]
local prefix, id, token = ARGV[1], ARGV[2], ARGV[3]
--- @include "includes/finish"
--- @include "includes/check_lease"

local refused, f = check_lease(job_key, token, 'executor')
if refused then return refused end
local at = rfc3339(now_ms())
emit(prefix, id, f[3], 'canceled', 'CANCELED')
finish(job_key, leases_key, prefix, id, 'CANCELED', at, nil)
return {1}
