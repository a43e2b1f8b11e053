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
  ARGV[10..] field, value extra job fields (cluster, workflow, depends_on, restart)

  Returns:
    {1, id, status}   created, status PENDING or SCHEDULED

  Event: submitted
]]
local seq_key, delayed_key, events_key = KEYS[1], KEYS[2], KEYS[3]
local prefix, executor = ARGV[1], ARGV[2]
--- @include "includes/time"
--- @include "includes/emit"
--- @include "includes/enqueue"

local now = now_ms()
local at = rfc3339(now)
local id = redis.call('INCR', seq_key)
local job_key = prefix .. 'job_' .. id
local run_at = tonumber(ARGV[8]) or 0
local status = run_at > now and 'SCHEDULED' or 'PENDING'

redis.call('HSET', job_key, 'id', id, 'executor', executor, 'status', status,
  'params', ARGV[3], 'attempt', 0, 'max_attempts', ARGV[4], 'backoff', ARGV[5],
  'timeout', ARGV[6], 'result_ttl', ARGV[7], 'owner', ARGV[9],
  'created', at, 'updated', at)
for i = 10, #ARGV - 1, 2 do
  redis.call('HSET', job_key, ARGV[i], ARGV[i + 1])
end

if status == 'SCHEDULED' then
  redis.call('HSET', job_key, 'run_at', rfc3339(run_at))
  redis.call('ZADD', delayed_key, run_at, id)
else
  enqueue(prefix, id, executor, false)
end
emit(events_key, id, executor, 'submitted', status)
return {1, id, status}
