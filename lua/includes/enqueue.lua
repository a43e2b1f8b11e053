--[[
  Function to make a job ready: push its id on its executor's queue (at the tail, or at the
  head when `front` is true). When the queue was empty it also arms the executor kind's wake
  marker, a one-element list that idle claimers BLPOP instead of polling. A non-empty queue
  needs no new marker: claimers always claim before they block, and claim.lua re-arms the
  marker when it leaves ids behind. The marker is capped at one entry so it never piles up.
  A job with a `priority` of 1-9 goes on its level's queue (`queue:<executor>:p<N>`), and
  the level joins `levels:<executor>`, which claim.lua reads highest first; `priority` is
  the job's field when the caller passes nil.
  enqueue(prefix, id, executor, front, priority)
]]
--- @include "includes/keys"
local function enqueue(prefix, id, executor, front, priority)
  if priority == nil then priority = redis.call('HGET', key_job(prefix, id), 'priority') end
  local p = tonumber(priority) or 0
  local len = redis.call(front and 'LPUSH' or 'RPUSH', key_queue(prefix, executor, p), id)
  if p > 0 then redis.call('ZADD', key_levels(prefix, executor), p, p) end
  local wake = key_wake(prefix, executor)
  if len == 1 and redis.call('LLEN', wake) == 0 then
    redis.call('LPUSH', wake, '1')
  end
end

--[[
  Function to announce a job on Stand's `start` list as Stand did (Python dict text
  `{'job_id': N, 'workflow': {'id': W}}`, W None when absent), trimmed to the newest `cap`
  entries so nothing piles up when no Stand-era consumer pops it. For jobs naming a cluster,
  when they become ready (create_job, or a workflow member's release). The job is marked
  `announced`: only such jobs are announced on `stop` later.
  announce_start(prefix, id, workflow, cap)
]]
local function announce_start(prefix, id, workflow, cap)
  workflow = workflow or 'None'
  if not tonumber(workflow) and workflow ~= 'None' then workflow = "'" .. workflow .. "'" end
  redis.call('HSET', key_job(prefix, id), 'announced', 1)
  local start_key = key_of(prefix, 'start')
  redis.call('RPUSH', start_key, "{'job_id': " .. id .. ", 'workflow': {'id': " .. workflow .. "}}")
  redis.call('LTRIM', start_key, -tonumber(cap), -1)
end

--[[
  Function to announce a stop on Stand's `stop` list (capped at the newest `cap` ids, so
  nothing piles up without a reader) and on the `stop` channel: stop.lua's, and a workflow's
  for each member it cancels. Only for a job announced on `start` (field `announced`): a
  Stand-era consumer never hears of ids it was not given.
  announce_stop(stop_key, job_key, id, cap)
]]
local function announce_stop(stop_key, job_key, id, cap)
  if redis.call('HEXISTS', job_key, 'announced') == 0 then return end
  redis.call('RPUSH', stop_key, id)
  redis.call('LTRIM', stop_key, -tonumber(cap), -1)
  redis.call('PUBLISH', stop_key, id)
end

--[[
  Function to give back a job's concurrency slot when it stops running (field `slot`, set
  by claim.lua for a job with a `concurrency_key`): its key's running count goes down and
  the oldest job parked for a slot goes back to the head of its queue, so it runs next
  without anyone polling. Safe to call more than once: only the first call finds the slot.
  free_slot(prefix, job_key)
]]
local function free_slot(prefix, job_key)
  if redis.call('HDEL', job_key, 'slot') == 0 then return end
  local f = redis.call('HMGET', job_key, 'executor', 'concurrency_key', 'owner')
  if not f[2] then return end
  local key = owned(f[3], f[2])
  local count_key = key_concurrency(prefix, f[1], key)
  if redis.call('DECR', count_key) <= 0 then redis.call('DEL', count_key) end
  local parked = key_parked(prefix, f[1], key)
  while true do
    local id = redis.call('LPOP', parked)
    if not id then return end
    -- A parked job stopped meanwhile is dropped here.
    if redis.call('HGET', key_job(prefix, id), 'status') == 'PENDING' then
      enqueue(prefix, id, f[1], true)
      return
    end
  end
end
