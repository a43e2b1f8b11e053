--[[
  presence: an executor process says it is alive, or, leaving, that it is gone. Its entry in
  `executors` is scored by the Redis time of its last call: reap.lua takes an executor
  silent for longer than the presence ttl for dead and ends its jobs' leases at once (a
  dead executor's jobs run again within seconds, not a lease later). `executor:<worker>`
  holds what `sluice executors` and GET /executors show, expiring with the presence ttl.
  One call per executor process, whatever the number of jobs it runs: it carries the
  heartbeats of the jobs it runs too (each extends that job's lease, as heartbeat.lua does,
  under the same fencing).

  KEYS[1] executors zset  executors
  KEYS[2] leases zset     leases

  ARGV[1] key prefix
  ARGV[2] worker          the process' name (the `worker` field of the jobs it runs)
  ARGV[3] kind            executor kind
  ARGV[4] slots           jobs it may run at once
  ARGV[5] running         jobs it runs now
  ARGV[6] ttl             ms: presence ttl
  ARGV[7] leaving         1: a clean shutdown, remove it; 0: refresh
  ARGV[8] lease           ms from now, for the jobs below
  ARGV[9..] id, token     the jobs whose leases to extend (pairs)

  Returns:
    {1, {code[, status]}, ...}   one reply per job, as heartbeat.lua's: {1} extended, {2}
                                 extended and a stop was requested, {-1} no such job,
                                 {-3, status} not RUNNING, {-6, status} stale lease token
]]
--- @include "includes/keys"
--- @include "includes/time"
--- @include "includes/check_lease"
local executors_key, leases_key = KEYS[1], KEYS[2]
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
local out, lease = {1}, tonumber(ARGV[8]) or 0
for i = 9, #ARGV - 1, 2 do
  local id = ARGV[i]
  out[#out + 1] = extend_lease(key_job(prefix, id), leases_key, id, ARGV[i + 1], now + lease)
end
return out
