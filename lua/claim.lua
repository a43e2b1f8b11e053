--[[
  claim: PENDING -> RUNNING for up to `count` jobs at the head of one executor kind's queues,
  the highest priority first: the queue of each level in `levels:<executor>` (9 down to 1),
  then the plain queue (priority 0); FIFO within a level. A level whose queue is found
  empty leaves the set. Strict priority: lower levels wait while a higher one has jobs.
  A job with a `concurrency_key` whose key already has `concurrency_limit` jobs running is
  parked (`parked:<executor>:<key>`) instead, and the claim goes on with the jobs behind it;
  a claimed one takes a slot (`concurrency:<executor>:<key>`, job field `slot`), which
  enqueue's free_slot gives back, unparking the oldest parked job, when it stops running.
  Every claimed job gets attempt+1, a lease until now+lease and the caller's fresh lease token
  (one token per claim call; a job appears once per call, so token+job is unique per attempt).
  Ids whose job is no longer PENDING (stopped, expired) are dropped, never handed out.
  A claimed workflow member turns its NOT_STARTED workflow RUNNING.
  Each claim also counts how long the job waited since it became ready (its `updated` time)
  in the `stats` hash: field claim_wait_le_<ms>:<executor> for the first bucket that holds it
  (claim_wait_le_inf beyond the last) and claim_wait_ms_sum:<executor> (GET /metrics).

  KEYS[1] ready queue     queue:<executor>
  KEYS[2] leases zset     leases
  KEYS[3] events stream   events
  KEYS[4] wake marker     wake:<executor>

  ARGV[1] key prefix
  ARGV[2] worker          name of the claiming executor process
  ARGV[3] lease token     fresh per claim call
  ARGV[4] lease           ms
  ARGV[5] count           most jobs to claim (pick_size)
  ARGV[6] executor        the kind the queue belongs to

  Returns:
    {1, {id, attempt, max_attempts, timeout, params, inputs}, ...}   zero or more claimed
                  jobs; inputs is 1 when the job has inputs, or is a workflow member
                  with parents (their files), to store first

  Event: claimed
]]
--- @include "includes/keys"
local queue_key, leases_key, events_key, wake_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, worker, token = ARGV[1], ARGV[2], ARGV[3]
local lease, count, executor = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local WAIT_BUCKETS = {1, 5, 10, 50, 100, 500, 1000, 5000, 30000, 300000}  -- ms
--- @include "includes/emit"

local levels_key = key_levels(prefix, executor)
local now = now_ms()
local at = rfc3339(now)
local out = {1}
while #out - 1 < count do
  local level = redis.call('ZREVRANGE', levels_key, 0, 0)[1]
  local ids = redis.call('LPOP', key_queue(prefix, executor, level), count - (#out - 1))
  if not ids and level then
    redis.call('ZREM', levels_key, level)
    ids = {}
  elseif not ids then
    break
  end
  for _, id in ipairs(ids) do
    local job_key = key_job(prefix, id)
    local f = redis.call('HMGET', job_key, 'status', 'max_attempts', 'timeout', 'params',
      'attempt', 'updated', 'workflow', 'inputs', 'node', 'depends_on', 'concurrency_key',
      'concurrency_limit')
    local full = false
    if f[1] == 'PENDING' and f[11] then
      local count_key = key_concurrency(prefix, executor, f[11])
      full = (tonumber(redis.call('GET', count_key)) or 0) >= (tonumber(f[12]) or 1)
      if full then
        redis.call('RPUSH', key_parked(prefix, executor, f[11]), id)
      else
        redis.call('INCR', count_key)
        redis.call('HSET', job_key, 'slot', 1)
      end
    end
    if f[1] == 'PENDING' and not full then
      local attempt = (tonumber(f[5]) or 0) + 1
      redis.call('HSET', job_key, 'status', 'RUNNING', 'attempt', attempt, 'worker', worker,
        'lease_token', token, 'started', at, 'updated', at)
      redis.call('ZADD', leases_key, now + lease, id)
      emit(prefix, id, executor, 'claimed', 'RUNNING', 'worker', worker,
        'attempt', attempt)
      out[#out + 1] = {id, attempt, f[2], f[3], f[4], (f[8] or (f[9] and f[10])) and 1 or 0}
      if f[7] and f[9] then
        local wf_key = key_workflow(prefix, f[7])
        if redis.call('HGET', wf_key, 'status') == 'NOT_STARTED' then
          redis.call('HSET', wf_key, 'status', 'RUNNING', 'updated', at)
        end
      end
      local waited = math.max(0, now - (parse_rfc3339(f[6]) or now))
      local bucket = 'inf'
      for _, b in ipairs(WAIT_BUCKETS) do
        if waited <= b then bucket = b break end
      end
      local stats = key_of(prefix, 'stats')
      redis.call('HINCRBY', stats, 'claim_wait_le_' .. bucket .. ':' .. executor, 1)
      redis.call('HINCRBY', stats, 'claim_wait_ms_sum:' .. executor, waited)
    end
  end
end
-- Jobs left behind: keep one wake marker armed so another idle claimer picks them up.
local left = redis.call('LLEN', queue_key) > 0 or redis.call('ZCARD', levels_key) > 0
if left and redis.call('LLEN', wake_key) == 0 then
  redis.call('LPUSH', wake_key, '1')
end
return out
