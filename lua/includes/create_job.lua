--[[
  Function to create a job (submit.lua, fire.lua): INCR the id, write job_N, then either
  queue it (PENDING) or park it in the delayed set until run_at (SCHEDULED), and emit
  `submitted`. `a` holds, in order: executor, params (MessagePack), max_attempts, backoff ms,
  timeout ms, result_ttl ms, run_at unix ms (0 = now), owner, then field, value pairs.
  Needs includes time, emit, enqueue.
  create_job(seq_key, delayed_key, events_key, prefix, a) -> id, status
]]
local function create_job(seq_key, delayed_key, events_key, prefix, a)
  local executor = a[1]
  local now = now_ms()
  local at = rfc3339(now)
  local id = redis.call('INCR', seq_key)
  local job_key = prefix .. 'job_' .. id
  local run_at = tonumber(a[7]) or 0
  local status = run_at > now and 'SCHEDULED' or 'PENDING'
  redis.call('HSET', job_key, 'id', id, 'executor', executor, 'status', status,
    'params', a[2], 'attempt', 0, 'max_attempts', a[3], 'backoff', a[4],
    'timeout', a[5], 'result_ttl', a[6], 'owner', a[8],
    'created', at, 'updated', at)
  for i = 9, #a - 1, 2 do
    redis.call('HSET', job_key, a[i], a[i + 1])
  end
  if status == 'SCHEDULED' then
    redis.call('HSET', job_key, 'run_at', rfc3339(run_at))
    redis.call('ZADD', delayed_key, run_at, id)
  else
    enqueue(prefix, id, executor, false)
  end
  emit(events_key, id, executor, 'submitted', status)
  return id, status
end
