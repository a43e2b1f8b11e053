--[[
  timeout: RUNNING -> TIMED_OUT when the attempt overran the job's timeout and no attempts are
  left (or SCHEDULED / PENDING to retry when some are), for the attempt that holds the lease.
  The executor has already killed the work.

  KEYS[1] job hash        job_N
  KEYS[2] leases zset     leases
  KEYS[3] delayed zset    delayed
  KEYS[4] events stream   events

  ARGV[1] key prefix
  ARGV[2] job id          N
  ARGV[3] lease token     handed out by claim
  ARGV[4] error           text shown to people, e.g. "timed out after 90s"

  Returns:
    {1, status}   the new status: SCHEDULED, PENDING or TIMED_OUT; CANCELED when its stop
                  was requested
    {-1}          no such job                          (404)
    {-3, status}  illegal move: status is not RUNNING  (409)
    {-6, status}  stale lease token                    (409)

  Event: retry_scheduled, retried, timed_out or canceled
]]
local job_key, leases_key, delayed_key, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, id, token = ARGV[1], ARGV[2], ARGV[3]
--- @include "includes/end_attempt"
--- @include "includes/check_lease"

local refused = check_lease(job_key, token)
if refused then return refused end
return {1, end_attempt(job_key, leases_key, delayed_key, prefix, id, 'TIMED_OUT',
  ARGV[4], true, now_ms())}
