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
  ARGV[11..] field, value extra job fields (cluster, restart, idempotency_key with
                  request_hash, unique_key, ...)

  An `idempotency_key` (with the `request_hash` of the request) is remembered for the
  owner for IDEMPOTENCY_WINDOW: the same key with the same request answers the job it made
  (even after that job expired), with another request a conflict. A `unique_key` answers
  the job holding it while that job is PENDING, SCHEDULED or RUNNING (unique while active;
  finish.lua lets it go).

  Returns:
    {1, id, status}   created, status PENDING or SCHEDULED
    {2, id, status}   made before: the idempotent replay or the active unique job (status
                      '' when that job has expired)                               (200)
    {-7, reason}      the named cluster is CLUSTER_NOT_FOUND or CLUSTER_DISABLED   (422)
    {-9, id}          the idempotency key was used with another request (job id)  (409)

  Event: submitted
]]
local seq_key, delayed_key, events_key = KEYS[1], KEYS[2], KEYS[3]
local prefix = ARGV[1]
--- @include "includes/create_job"

local IDEMPOTENCY_WINDOW = 24 * 3600 * 1000  -- ms an idempotency key is remembered

local a = {unpack(ARGV, 2)}
local extra = job_extras(a)
local function made_before(id)
  return {2, tonumber(id), redis.call('HGET', key_job(prefix, id), 'status') or ''}
end

local idem_key
if extra.idempotency_key then
  idem_key = key_idempotency(prefix, a[8], extra.idempotency_key)
  local seen = redis.call('HMGET', idem_key, 'id', 'request')
  if seen[1] then
    if seen[2] ~= (extra.request_hash or '') then return {-9, tonumber(seen[1])} end
    return made_before(seen[1])
  end
end
local unique_key
if extra.unique_key then
  unique_key = key_unique(prefix, a[1], owned(a[8], extra.unique_key))
  local holder = redis.call('GET', unique_key)
  if holder then
    local st = redis.call('HGET', key_job(prefix, holder), 'status')
    if st == 'PENDING' or st == 'SCHEDULED' or st == 'RUNNING' then return made_before(holder) end
  end
end

local id, status = create_job(seq_key, delayed_key, prefix, a)
if not id then return {-7, status} end
if idem_key then
  redis.call('HSET', idem_key, 'id', id, 'request', extra.request_hash or '')
  redis.call('PEXPIRE', idem_key, IDEMPOTENCY_WINDOW)
end
if unique_key then redis.call('SET', unique_key, id) end
return {1, id, status}
