--[[
  submit: (new) -> PENDING, or (new) -> SCHEDULED when run_at is in the future.

  KEYS[1] id counter      job_seq
  KEYS[2] delayed zset    delayed
  KEYS[3] events stream   events

  ARGV[1] key prefix
  ARGV[2] executor        kind name, e.g. solver
  ARGV[3] params          MessagePack bytes
  ARGV[4] max_attempts    >= 1
  ARGV[5] backoff         ms, base of the exponential retry delay
  ARGV[6] timeout         ms, per attempt (0 = none)
  ARGV[7] result_ttl      ms, how long a finished job is kept
  ARGV[8] run_at          unix ms; 0 or past = run now
  ARGV[9] owner           account that submitted ('' = none)
  ARGV[10] start list cap most entries kept on Stand's `start` list
  ARGV[11..] field, value extra job fields (cluster, workflow, depends_on, restart)

  Returns:
    {1, id, status}   created, status PENDING or SCHEDULED
    {-7, reason}      the named cluster is CLUSTER_NOT_FOUND or CLUSTER_DISABLED   (422)

  Event: submitted
]]
local seq_key, delayed_key, events_key = KEYS[1], KEYS[2], KEYS[3]
local prefix = ARGV[1]
--- @include "includes/create_job"

local id, status = create_job(seq_key, delayed_key, prefix, {unpack(ARGV, 2)})
if not id then return {-7, status} end
return {1, id, status}
