--[[
  Functions for jobs that belong to a workflow (a DAG of jobs made by workflow.lua).
  Workflow hash workflow_W: status NOT_STARTED -> RUNNING (first claim) -> COMPLETED or
  CANCELLED; jobs (ids, comma-separated, in a topological order), total, done (members
  ended for good), completed, on_failure (all | descendants), result_ttl, failed_job,
  list_cap (how many entries Stand's start and stop lists keep).
  Member job fields: workflow, node, depends_on (parent ids), dependents (child ids) and,
  while it waits for parents, waiting_on (how many have not completed; status SCHEDULED,
  in no queue or set).

  expire_job(prefix, id, ttl): job_N and its state history history:job_N expire after ttl
  ms (nothing when ttl is not positive); prune.lua then takes it out of the listing indexes.

  workflow_cancel(prefix, wf_key, targets, except, why, at, cap) -> members ended so far
  workflow_settle(prefix, wf_key, w, done, at) -> true while the workflow goes on; else it
  ends (COMPLETED or CANCELLED) and expires with its members.

  workflow_after(prefix, id, wf, status, at) -> true when the job must not expire yet.
  Called by finish when member `id` ended for good with `status`:
  - COMPLETED: each dependent whose last parent this was goes SCHEDULED -> PENDING (event
    ready) onto its queue;
  - anything else (FAILED, TIMED_OUT, CANCELED) cancels the workflow's unfinished members
    (every one, or only the job's descendants when on_failure is "descendants"): waiting
    ones CANCELED at once, running ones asked to stop (their executor confirms with
    cancel.lua); with on_failure "all" the workflow is CANCELLED at once, as the Workflow
    Service did; failed_job names the first member that ended badly;
  - when every member has ended: the workflow is COMPLETED (all completed) or CANCELLED,
    and it and all its members expire after its result_ttl.
  Includes (transitively) time, emit, enqueue.
]]
--- @include "includes/keys"
--- @include "includes/emit"
--- @include "includes/index"
--- @include "includes/enqueue"
local function expire_job(prefix, id, ttl)
  ttl = tonumber(ttl)
  if ttl and ttl > 0 then
    redis.call('PEXPIRE', key_job(prefix, id), ttl)
    redis.call('PEXPIRE', key_history(prefix, id), ttl)
  end
end

local function workflow_ids(text)
  local ids = {}
  for n in string.gmatch(text or '', '%d+') do ids[#ids + 1] = n end
  return ids
end

-- Ends a waiting member (SCHEDULED or PENDING) as CANCELED, or asks a running one to stop;
-- either way its id goes on Stand's `stop` list (capped at `cap`) and channel
-- (enqueue's announce_stop, as stop.lua does). Returns true when it ended here.
local function workflow_cancel_member(prefix, id, why, at, cap)
  local key = key_job(prefix, id)
  local m = redis.call('HMGET', key, 'status', 'executor', 'stop_requested', 'priority')
  if m[1] == 'PENDING' or m[1] == 'SCHEDULED' then
    announce_stop(key_of(prefix, 'stop'), key, id, cap)
    redis.call('LREM', key_queue(prefix, m[2], m[4]), 1, id)
    redis.call('ZREM', key_of(prefix, 'delayed'), id)
    redis.call('HDEL', key, 'waiting_on')
    redis.call('HSET', key, 'status', 'CANCELED', 'error', why, 'finished', at, 'updated', at)
    index_ended(prefix, id, m[2], 'CANCELED')
    emit(prefix, id, m[2], 'canceled', 'CANCELED', 'error', why)
    return true
  end
  if m[1] == 'RUNNING' and not m[3] then
    announce_stop(key_of(prefix, 'stop'), key, id, cap)
    redis.call('HSET', key, 'stop_requested', at, 'updated', at)
    emit(prefix, id, m[2], 'stop_requested', 'RUNNING', 'error', why)
  end
  return false
end

-- Cancels each member in `targets` but `except` (workflow_cancel_member); returns how many
-- members have ended now (the workflow's `done`).
local function workflow_cancel(prefix, wf_key, targets, except, why, at, cap)
  local done = tonumber(redis.call('HGET', wf_key, 'done')) or 0
  for _, t in ipairs(targets) do
    if t ~= except and workflow_cancel_member(prefix, t, why, at, cap) then
      done = redis.call('HINCRBY', wf_key, 'done', 1)
    end
  end
  return done
end

-- Once every member has ended (`done` = total), ends the workflow COMPLETED (all completed)
-- or CANCELLED and sets it and all its members to expire. Returns true while it goes on.
-- `w` is the HMGET of workflow_after.
local function workflow_settle(prefix, wf_key, w, done, at)
  if done < tonumber(w[4]) then return true end
  local completed = tonumber(redis.call('HGET', wf_key, 'completed')) or 0
  local final = completed >= tonumber(w[4]) and 'COMPLETED' or 'CANCELLED'
  redis.call('HSET', wf_key, 'status', final, 'finished', at, 'updated', at)
  for _, m in ipairs(workflow_ids(w[2])) do expire_job(prefix, m, w[5]) end
  local ttl = tonumber(w[5])
  if ttl and ttl > 0 then redis.call('PEXPIRE', wf_key, ttl) end
  return false
end

-- The workflow fields workflow_after and workflow_stop.lua read, in this order.
local WORKFLOW_FIELDS = {'status', 'jobs', 'on_failure', 'total', 'result_ttl', 'list_cap',
  'finished'}

local function workflow_after(prefix, id, wf, status, at)
  local wf_key = key_workflow(prefix, wf)
  local w = redis.call('HMGET', wf_key, unpack(WORKFLOW_FIELDS))
  if not w[1] or w[7] then return false end
  local done = redis.call('HINCRBY', wf_key, 'done', 1)
  if status == 'COMPLETED' then
    redis.call('HINCRBY', wf_key, 'completed', 1)
    for _, kid in ipairs(workflow_ids(redis.call('HGET', key_job(prefix, id), 'dependents'))) do
      local kid_key = key_job(prefix, kid)
      local k = redis.call('HMGET', kid_key, 'status', 'executor', 'waiting_on', 'cluster')
      if k[1] == 'SCHEDULED' and k[3] then
        if redis.call('HINCRBY', kid_key, 'waiting_on', -1) <= 0 then
          redis.call('HDEL', kid_key, 'waiting_on')
          redis.call('HSET', kid_key, 'status', 'PENDING', 'updated', at)
          enqueue(prefix, kid, k[2], false)
          if k[4] then announce_start(prefix, kid, wf, w[6]) end
          emit(prefix, kid, k[2], 'ready', 'PENDING')
        end
      end
    end
  else
    redis.call('HSETNX', wf_key, 'failed_job', id)
    redis.call('HSET', wf_key, 'updated', at)
    local targets = workflow_ids(w[2])
    if w[3] == 'descendants' then
      targets = {}
      local seen, todo = {}, {id}
      while #todo > 0 do
        local at_id = table.remove(todo)
        for _, kid in ipairs(workflow_ids(redis.call('HGET', key_job(prefix, at_id), 'dependents'))) do
          if not seen[kid] then
            seen[kid] = true
            targets[#targets + 1] = kid
            todo[#todo + 1] = kid
          end
        end
      end
    else
      redis.call('HSET', wf_key, 'status', 'CANCELLED')
    end
    done = workflow_cancel(prefix, wf_key, targets, id,
      'workflow ' .. wf .. ' canceled: job ' .. id .. ' ' .. status, at, w[6])
  end
  return workflow_settle(prefix, wf_key, w, done, at)
end
