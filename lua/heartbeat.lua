--[[
  heartbeat: RUNNING -> RUNNING, extends the lease of the attempt that holds it.

  KEYS[1] job hash        job_N
  KEYS[2] leases zset     leases

  ARGV[1] job id          N
  ARGV[2] lease token     handed out by claim
  ARGV[3] lease           ms from now

  Returns:
    {1}           extended
    {2}           extended, and a stop was requested: the executor must stop the job
    {-1}          no such job                          (404)
    {-3, status}  illegal move: status is not RUNNING  (409)
    {-6, status}  stale lease token                    (409)

  Event: none (heartbeats would flood the stream)
]]
local job_key, leases_key = KEYS[1], KEYS[2]
local id, token, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
--- @include "includes/time"
--- @include "includes/check_lease"

return extend_lease(job_key, leases_key, id, token, now_ms() + lease)
