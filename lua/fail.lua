--[[
  fail: RUNNING -> SCHEDULED (retry after backoff), RUNNING -> PENDING (retry, no backoff) or
  RUNNING -> FAILED (no attempts left, or the error is not retryable), for the attempt that
  holds the lease.

  KEYS[1] job hash        job_N
  KEYS[2] leases zset     leases
  KEYS[3] delayed zset    delayed
  KEYS[4] events stream   events

  ARGV[1] key prefix
  ARGV[2] job id          N
  ARGV[3] lease token     handed out by claim
  ARGV[4] error           text shown to people
  ARGV[5] retryable       1 = retry if attempts are left, 0 = fail for good

  Returns:
    {1, status}   the new status: SCHEDULED, PENDING or FAILED; CANCELED when its stop
                  was requested
    {-1}          no such job                          (404)
    {-3, status}  illegal move: status is not RUNNING  (409)
    {-6, status}  stale lease token                    (409)

  Event: retry_scheduled, retried, failed or canceled
]]
local job_key, leases_key, delayed_key, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, id, token = ARGV[1], ARGV[2], ARGV[3]
--- @include "includes/end_attempt"
--- @include "includes/check_lease"

local refused = check_lease(job_key, token)
if refused then return refused end
return {1, end_attempt(job_key, leases_key, delayed_key, prefix, id, 'FAILED',
  ARGV[4], ARGV[5] == '1', now_ms())}
