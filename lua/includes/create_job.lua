--[[
  Function to create a job (submit.lua, fire.lua): INCR the id, write job_N, then either
  queue it (PENDING) or park it in the delayed set until run_at (SCHEDULED), and emit
  `submitted`. `a` holds, in order: executor, params (MessagePack), max_attempts, backoff ms,
  timeout ms, result_ttl ms, run_at unix ms (0 = now), owner, start list cap, then field,
  value pairs.
  A job that names a cluster (field `cluster`) is refused unless `cluster_<id>` exists with
  enabled = true; it is announced on Stand's `start` list (enqueue's announce_start) when
  it is ready: at once, or, for a workflow member waiting for parents, at its release, with
  its workflow's id (field `workflow`, or the Lemonade workflow of a Stand job,
  `stand_workflow`).
  A workflow member created with field waiting_on > 0 (parents not yet completed) is
  SCHEDULED in no queue or set until includes/workflow releases it. A job created with
  field held = <unix ms> (a multipart submit) is SCHEDULED, parked in the delayed set until
  that deadline, while its files are uploaded: unhold.lua makes it ready, promote.lua
  cancels it if the deadline passes first.
  The job joins the listing indexes of its kind and owner (includes/index).
  Includes (transitively) time, emit, enqueue, index.
  cluster_refusal(prefix, cluster) -> nil, or 'CLUSTER_NOT_FOUND' | 'CLUSTER_DISABLED'
  job_extras(a) -> {field = value} of the extra pairs
  create_job(seq_key, delayed_key, prefix, a) -> id, status
                                                          or nil, 'CLUSTER_NOT_FOUND' | 'CLUSTER_DISABLED'
]]
--- @include "includes/keys"
--- @include "includes/time"
--- @include "includes/emit"
--- @include "includes/enqueue"
--- @include "includes/index"
local function cluster_refusal(prefix, cluster)
  if not cluster then return nil end
  local enabled = redis.call('HGET', key_cluster(prefix, cluster), 'enabled')
  if not enabled then return 'CLUSTER_NOT_FOUND' end
  if enabled ~= 'true' then return 'CLUSTER_DISABLED' end
  return nil
end

-- The extra field, value pairs of a create_job argument list `a` (from a[10]), by field.
local function job_extras(a)
  local extra = {}
  for i = 10, #a - 1, 2 do extra[a[i]] = a[i + 1] end
  return extra
end

local function create_job(seq_key, delayed_key, prefix, a)
  local executor = a[1]
  local extra = job_extras(a)
  local refusal = cluster_refusal(prefix, extra.cluster)
  if refusal then return nil, refusal end
  local now = now_ms()
  local at = rfc3339(now)
  local id = redis.call('INCR', seq_key)
  local job_key = key_job(prefix, id)
  local run_at = tonumber(a[7]) or 0
  local held = tonumber(extra.held)
  local blocked = (tonumber(extra.waiting_on) or 0) > 0 or held ~= nil
  local status = (blocked or run_at > now) and 'SCHEDULED' or 'PENDING'
  redis.call('HSET', job_key, 'id', id, 'executor', executor, 'status', status,
    'params', a[2], 'attempt', 0, 'max_attempts', a[3], 'backoff', a[4],
    'timeout', a[5], 'result_ttl', a[6], 'owner', a[8],
    'created', at, 'updated', at)
  for i = 10, #a - 1, 2 do
    redis.call('HSET', job_key, a[i], a[i + 1])
  end
  if extra.cluster and not blocked then
    announce_start(prefix, id, extra.workflow or extra.stand_workflow, a[9])
  end
  if held then
    redis.call('ZADD', delayed_key, held, id)  -- until unhold.lua, or canceled at the deadline
  elseif blocked then
    -- waits for its parents (includes/workflow)
  elseif status == 'SCHEDULED' then
    redis.call('HSET', job_key, 'run_at', rfc3339(run_at))
    redis.call('ZADD', delayed_key, run_at, id)
  else
    enqueue(prefix, id, executor, false, extra.priority or 0)
  end
  index_created(prefix, id, executor, a[8])
  emit(prefix, id, executor, 'submitted', status)
  return id, status
end
