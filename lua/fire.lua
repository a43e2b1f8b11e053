--[[
  fire: one tick of a periodic schedule -> a new job (as submit.lua makes it), exactly once
  however many beat processes run: the tick fires only if the schedule is still due at the
  very time the caller saw (its score in `schedules`), and firing moves it to the next tick.

  KEYS[1] schedules zset  schedules (name scored by next due unix ms)
  KEYS[2] id counter      job_seq
  KEYS[3] delayed zset    delayed
  KEYS[4] events stream   events

  ARGV[1] key prefix
  ARGV[2] schedule name
  ARGV[3] tick            the due time the caller read (unix ms)
  ARGV[4] next            the tick after it (unix ms)
  ARGV[5..] the job, as submit.lua's ARGV[2..]: executor, params, max_attempts, backoff,
          timeout, result_ttl, run_at, owner, start list cap, field, value ...

  Returns:
    {1, id, status}   fired: the new job
    {0}               not fired: another beat fired this tick, or the schedule is gone
    {-7, reason}      tick consumed, no job: its cluster is CLUSTER_NOT_FOUND or CLUSTER_DISABLED

  Event: submitted
]]
--- @include "includes/keys"
local schedules_key, seq_key, delayed_key, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, name, tick, next_tick = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
--- @include "includes/create_job"

local due = redis.call('ZSCORE', schedules_key, name)
if not due or tonumber(due) ~= tonumber(tick) then return {0} end
redis.call('ZADD', schedules_key, next_tick, name)
redis.call('HSET', key_schedule(prefix, name), 'last_tick', rfc3339(tonumber(tick)),
  'next_tick', rfc3339(tonumber(next_tick)))
local id, status = create_job(seq_key, delayed_key, prefix, {unpack(ARGV, 5)})
if not id then return {-7, status} end
return {1, id, status}
