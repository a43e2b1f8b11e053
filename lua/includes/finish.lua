--[[
  Function to end a job for good: terminal status, finished time, off the lease set, and the
  hash (with its state history) expires after the job's result_ttl (milliseconds, field
  result_ttl) — unless the job belongs to a workflow that is still going, which holds it
  (its dependents read its artifacts) until the workflow ends (includes/workflow).
  `ttl` is the job's result_ttl when the caller already read it (nil: read here); extra
  field, value pairs are written in the same HSET.
  Every job that ends here moves to its final status' listing index (includes/index), and
  lets go of its `unique_key` (submit.lua) and of its concurrency slot (enqueue's free_slot).
  Includes (transitively) time, emit, index, enqueue, workflow.
  finish(job_key, leases_key, prefix, id, status, at, ttl, ...) -> nothing
]]
--- @include "includes/workflow"
local function finish(job_key, leases_key, prefix, id, status, at, ttl, ...)
  free_slot(prefix, job_key)
  redis.call('HSET', job_key, 'status', status, 'finished', at, 'updated', at, ...)
  redis.call('HDEL', job_key, 'stop_requested', 'held', 'waiting')
  redis.call('ZREM', leases_key, id)
  -- A member has `node` too (a Stand-era `workflow` label alone is not membership).
  local m = redis.call('HMGET', job_key, 'workflow', 'node', 'executor', 'result_ttl',
    'unique_key', 'owner')
  ttl = ttl or m[4]
  index_ended(prefix, id, m[3], status)
  if m[5] then
    -- Unique while active: the key goes with the job that holds it.
    local unique_key = key_unique(prefix, m[3], owned(m[6], m[5]))
    if redis.call('GET', unique_key) == tostring(id) then redis.call('DEL', unique_key) end
  end
  if m[1] and m[2] and workflow_after(prefix, id, m[1], status, at) then return end
  expire_job(prefix, id, ttl)
end
