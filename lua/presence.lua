--[[
  presence: an executor process says it is alive, or, leaving, that it is gone. Its entry in
  `executors` is scored by the Redis time of its last call: reap.lua takes an executor
  silent for longer than the presence ttl for dead and ends its jobs' leases at once (a
  dead executor's jobs run again within seconds, not a lease later). `executor:<worker>`
  holds what `sluice executors` and GET /executors show, expiring with the presence ttl.
  One call per executor process, whatever the number of jobs it runs.

  KEYS[1] executors zset  executors

  ARGV[1] key prefix
  ARGV[2] worker          the process' name (the `worker` field of the jobs it runs)
  ARGV[3] kind            executor kind
  ARGV[4] slots           jobs it may run at once
  ARGV[5] running         jobs it runs now
  ARGV[6] ttl             ms: presence ttl
  ARGV[7] leaving         1: a clean shutdown, remove it; 0: refresh

  Returns:
    {1}
]]
--- @include "includes/keys"
--- @include "includes/time"
local executors_key = KEYS[1]
local prefix, worker, kind = ARGV[1], ARGV[2], ARGV[3]
local info_key = key_executor(prefix, worker)
if ARGV[7] == '1' then
  redis.call('ZREM', executors_key, worker)
  redis.call('DEL', info_key)
  return {1}
end
local now = now_ms()
if redis.call('ZADD', executors_key, now, worker) == 1 then
  redis.call('HSET', info_key, 'since', rfc3339(now))
end
redis.call('HSET', info_key, 'kind', kind, 'slots', ARGV[4], 'running', ARGV[5],
  'seen', rfc3339(now))
redis.call('PEXPIRE', info_key, tonumber(ARGV[6]))
return {1}
