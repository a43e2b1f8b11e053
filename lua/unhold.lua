--[[
  unhold: a held job (created by a multipart submit with field `held`, SCHEDULED while its
  files are uploaded) becomes PENDING on its queue, or SCHEDULED until its own run_at,
  now that every file is stored. Only a held job moves: a job stopped meanwhile stays
  CANCELED.

  KEYS[1] delayed zset    delayed
  KEYS[2] events stream   events

  ARGV[1] key prefix
  ARGV[2] job id          N
  ARGV[3] run_at          unix ms the job asked for; 0 or past = run now
  ARGV[4] start list cap  most entries kept on Stand's `start` list

  Returns:
    {1, status}   PENDING or SCHEDULED
    {-1}          no such job                      (404)
    {-3, status}  not held (stopped or expired)    (409)

  Event: ready (PENDING) or scheduled (SCHEDULED)
]]
--- @include "includes/keys"
local delayed_key, events_key = KEYS[1], KEYS[2]
local prefix, id, run_at, start_cap = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
--- @include "includes/emit"
--- @include "includes/enqueue"

local job_key = key_job(prefix, id)
local f = redis.call('HMGET', job_key, 'status', 'executor', 'held', 'cluster')
if not f[1] then return {-1} end
if f[1] ~= 'SCHEDULED' or not f[3] then return {-3, f[1]} end
local now = now_ms()
local at = rfc3339(now)
redis.call('HDEL', job_key, 'held')
if f[4] then announce_start(prefix, id, nil, start_cap) end
if run_at > now then
  redis.call('HSET', job_key, 'run_at', rfc3339(run_at), 'updated', at)
  redis.call('ZADD', delayed_key, run_at, id)
  emit(prefix, id, f[2], 'scheduled', 'SCHEDULED')
  return {1, 'SCHEDULED'}
end
redis.call('ZREM', delayed_key, id)
redis.call('HSET', job_key, 'status', 'PENDING', 'updated', at)
enqueue(prefix, id, f[2], false)
emit(prefix, id, f[2], 'ready', 'PENDING')
return {1, 'PENDING'}
