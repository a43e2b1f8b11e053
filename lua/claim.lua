--[[
  claim: PENDING -> RUNNING for up to `count` jobs at the head of one executor kind's queues,
  the highest priority first: the queue of each level in `levels:<executor>` (9 down to 1),
  then the plain queue (priority 0); FIFO within a level. A level whose queue is found
  empty leaves the set. Strict priority: lower levels wait while a higher one has jobs.
  A job with a `concurrency_key` whose key already has `concurrency_limit` jobs running is
  parked (`parked:<executor>:<key>`, <key> being `<owner>:<concurrency_key>`: keys are the
  owner's own) instead, and the claim goes on with the jobs behind it;
  a claimed one takes a slot (`concurrency:<executor>:<key>`, job field `slot`), which
  enqueue's free_slot gives back, unparking the oldest parked job, when it stops running.
  Rate limits, "N/<ms>ms" (at most N starts in any window of that many ms), a sliding log
  of start times per scope (`starts:<executor>`, `starts:<executor>:<key>`, pruned as it is
  read, expiring after one window):
  - of the kind, field <executor> of `rate_limits`: the claim starts no more than the
    window has room for; the jobs behind stay queued, in order;
  - of a job's `rate_key` (its `rate_limit`): a job whose key has no room, or has older
    jobs waiting, waits in `throttled:<executor>:<key>` (in order) and the key in
    `throttle:<executor>`, scored by when its window opens. Each claim first moves the
    oldest jobs of every key whose window has opened, as many as it has room for, back to
    the head of their queues. A job checks its rate key before its concurrency key.
  A parked or throttled job carries `waiting` = concurrency | rate until it starts.
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
    {1, wait, {id, attempt, max_attempts, timeout, params, inputs}, ...}   zero or more
                  claimed jobs; inputs is 1 when the job has inputs, or is a workflow
                  member with parents (their files), to store first. wait: 0, or the ms
                  until a job held back by a rate limit may start (claim again then; the
                  wake marker is not armed for such jobs)

  Event: claimed
]]
--- @include "includes/keys"
local queue_key, leases_key, events_key, wake_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, worker, token = ARGV[1], ARGV[2], ARGV[3]
local lease, count, executor = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local WAIT_BUCKETS = {1, 5, 10, 50, 100, 500, 1000, 5000, 30000, 300000}  -- ms
--- @include "includes/emit"

--- @include "includes/enqueue"

local levels_key = key_levels(prefix, executor)
local throttle_key = key_throttle(prefix, executor)
local now = now_ms()
local at = rfc3339(now)

-- A rate "N/<ms>ms" as N, ms (nil for anything else).
local function rate_of(text)
  local n, ms = string.match(text or '', '^(%d+)/(%d+)ms$')
  return tonumber(n), tonumber(ms)
end

-- How many starts a log holds within the last `period` ms (older ones leave it).
local function recent(log, period)
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - period)
  return redis.call('ZCARD', log)
end

-- When the window of a log with starts in it next has room: its oldest start + period.
local function opens(log, period)
  local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')[2]
  return (tonumber(oldest) or now) + period
end

-- The logs this claim reads, each pruned and counted once, with the starts it adds
-- (written in one ZADD per log at the end): log -> {period, n, adds}.
local windows = {}
local function window(log, period)
  local w = windows[log]
  if not w then
    w = {period = period, n = recent(log, period), adds = {}}
    windows[log] = w
  end
  return w
end

local function log_start(log, period, member)
  local w = window(log, period)
  w.adds[#w.adds + 1] = now
  w.adds[#w.adds + 1] = member
  w.n = w.n + 1
end

-- Rate keys whose window has opened: their oldest throttled jobs, as many as there is
-- room for, go back to the head of their queues (in order); the key stays in
-- `throttle` while jobs are left, due when the window next has room.
for _, key in ipairs(redis.call('ZRANGEBYSCORE', throttle_key, '-inf', now, 'LIMIT', 0, 100)) do
  local held = key_throttled(prefix, executor, key)
  local head = redis.call('LINDEX', held, 0)
  local max, period = rate_of(head and redis.call('HGET', key_job(prefix, head), 'rate_limit'))
  local log = key_starts(prefix, executor, key)
  local n = max and window(log, period).n or 0
  local free = max and max - n or 1  -- a job gone meanwhile is dropped by the claim
  local ids = free > 0 and redis.call('LPOP', held, free) or {}
  for i = #ids, 1, -1 do enqueue(prefix, ids[i], executor, true) end
  if redis.call('LLEN', held) > 0 then
    redis.call('ZADD', throttle_key, n > 0 and opens(log, period) or now + (period or 0), key)
  else
    redis.call('ZREM', throttle_key, key)
  end
end

-- The kind's own limit caps how many this claim may start.
local kind_max, kind_period = rate_of(redis.call('HGET', key_of(prefix, 'rate_limits'), executor))
local kind_log = key_starts(prefix, executor)
local room = count
if kind_max then room = math.min(count, kind_max - window(kind_log, kind_period).n) end

-- Whether job `id` must wait for its rate key's window (then it is throttled). A job
-- released from the throttle (still `waiting` = rate) goes before the ones still held.
local function throttled(id, key, limit, released)
  local max, period = rate_of(limit)
  if not max then return false end
  local log, held = key_starts(prefix, executor, key), key_throttled(prefix, executor, key)
  local n = window(log, period).n
  if n < max and (released or redis.call('LLEN', held) == 0) then return false end
  redis.call(released and 'LPUSH' or 'RPUSH', held, id)
  redis.call('ZADD', throttle_key, 'NX', n > 0 and opens(log, period) or now, key)
  return true
end

local out = {1, 0}
while #out - 2 < room do
  local level = redis.call('ZREVRANGE', levels_key, 0, 0)[1]
  local ids = redis.call('LPOP', key_queue(prefix, executor, level), room - (#out - 2))
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
      'concurrency_limit', 'rate_key', 'rate_limit', 'waiting', 'owner')
    -- Keys are the owner's own: no owner fills or throttles another's.
    local concurrency_key = f[11] and owned(f[16], f[11])
    local rate_key = f[13] and owned(f[16], f[13])
    local waits
    if f[1] == 'PENDING' and rate_key and throttled(id, rate_key, f[14], f[15] == 'rate') then
      waits = 'rate'
    end
    if f[1] == 'PENDING' and not waits and concurrency_key then
      local count_key = key_concurrency(prefix, executor, concurrency_key)
      if (tonumber(redis.call('GET', count_key)) or 0) >= (tonumber(f[12]) or 1) then
        redis.call('RPUSH', key_parked(prefix, executor, concurrency_key), id)
        waits = 'concurrency'
      else
        redis.call('INCR', count_key)
        redis.call('HSET', job_key, 'slot', 1)
      end
    end
    if waits then
      redis.call('HSET', job_key, 'waiting', waits)
    elseif f[1] == 'PENDING' then
      local attempt = (tonumber(f[5]) or 0) + 1
      redis.call('HSET', job_key, 'status', 'RUNNING', 'attempt', attempt, 'worker', worker,
        'lease_token', token, 'started', at, 'updated', at)
      if f[15] then redis.call('HDEL', job_key, 'waiting') end
      if rate_key then
        local _, period = rate_of(f[14])
        if period then log_start(key_starts(prefix, executor, rate_key), period, id .. ':' .. attempt) end
      end
      if kind_max then log_start(kind_log, kind_period, id .. ':' .. attempt) end
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

for log, w in pairs(windows) do
  for i = 1, #w.adds, 2000 do  -- unpack takes a few thousand values at most
    redis.call('ZADD', log, unpack(w.adds, i, math.min(i + 1999, #w.adds)))
  end
  if #w.adds > 0 then redis.call('PEXPIRE', log, w.period) end
end

-- When a rate limit holds jobs back: how long until one may start.
local due = tonumber(redis.call('ZRANGE', throttle_key, 0, 0, 'WITHSCORES')[2])
local left = redis.call('LLEN', queue_key) > 0 or redis.call('ZCARD', levels_key) > 0
if left and kind_max and #out - 2 >= room and room < count then
  local opens_at = opens(kind_log, kind_period)
  due = due and math.min(due, opens_at) or opens_at
  left = false  -- they wait for the window, not for a claimer
end
if due then out[2] = math.max(1, due - now) end
-- Jobs left behind: keep one wake marker armed so another idle claimer picks them up.
if left and redis.call('LLEN', wake_key) == 0 then
  redis.call('LPUSH', wake_key, '1')
end
return out
