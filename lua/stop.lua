--[[
  stop: PENDING or SCHEDULED -> CANCELED at once; RUNNING -> RUNNING with a stop request that
  the executor holding the lease obeys (it kills the work, then calls cancel.lua). Either way,
  for a job that was announced on Stand's `start` list, the id is pushed on its `stop` list
  (capped: nothing piles up without a reader; a Stand-era consumer may run a job it popped
  from `start`) and published on the `stop` channel. Stopping a job whose stop is already requested changes nothing and succeeds.

  KEYS[1] job hash        job_N
  KEYS[2] leases zset     leases
  KEYS[3] delayed zset    delayed
  KEYS[4] stop list       stop
  KEYS[5] events stream   events

  ARGV[1] key prefix
  ARGV[2] job id          N
  ARGV[3] stop list cap   most ids kept on the stop list (nothing piles up without a reader)

  Returns:
    {1, status}   CANCELED (was waiting) or RUNNING (stop requested from its executor)
    {-1}          no such job                                    (404)
    {-2, status, holder, since} the job is locked                              (409)
    {-3, status}  illegal move: the job has already finished     (409)

  Event: canceled or stop_requested
]]
--- @include "includes/keys"
local job_key, leases_key, delayed_key, stop_key, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, id, stop_cap = ARGV[1], ARGV[2], tonumber(ARGV[3])
--- @include "includes/finish"

local f = redis.call('HMGET', job_key, 'status', 'locked', 'executor', 'stop_requested',
  'locked_at', 'priority')
local status = f[1]
if not status then return {-1} end
if f[2] and f[2] ~= '' then return {-2, status, f[2], f[5] or ''} end
local at = rfc3339(now_ms())
if status == 'PENDING' or status == 'SCHEDULED' then
  announce_stop(stop_key, job_key, id, stop_cap)
  redis.call('LREM', key_queue(prefix, f[3], f[6]), 1, id)
  redis.call('ZREM', delayed_key, id)
  emit(prefix, id, f[3], 'canceled', 'CANCELED')
  finish(job_key, leases_key, prefix, id, 'CANCELED', at, nil)
  return {1, 'CANCELED'}
end
if status == 'RUNNING' then
  if not f[4] then
    redis.call('HSET', job_key, 'stop_requested', at, 'updated', at)
    announce_stop(stop_key, job_key, id, stop_cap)
    emit(prefix, id, f[3], 'stop_requested', 'RUNNING')
  end
  return {1, 'RUNNING'}
end
return {-3, status}
