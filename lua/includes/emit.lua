--[[
  Function to append a state or progress event to the global event stream, capped with
  MAXLEN ~ so it never grows without bound, and to count it in the `stats` hash beside the
  stream (field "<event>:<executor>", read by GET /metrics; progress and log lines are not counted).
  The entry id (<unix ms>-<seq>) is the event's time. Every state event (not progress or log)
  is also appended to the job's own history, the list history:job_N of
  "<RFC 3339 time> <status> <event>" lines (LRANGE history:job_7 0 -1), which expires with
  the job (includes/workflow expire_job). Followers of one job read this stream
  and filter on `job` (as BullMQ's QueueEvents do): a stream per job measured 40% slower on
  the claim/complete path (README, Benchmark).
  emit(events_key, id, executor, event, status [, field, value ...])
]]
local EVENTS_MAXLEN = 10000  -- enough for live followers and a dashboard, bounded memory

local function events_prefix(events_key)
  return string.sub(events_key, 1, #events_key - #'events')
end
local function stats_key(events_key)
  return events_prefix(events_key) .. 'stats'
end

local function emit(events_key, id, executor, event, status, ...)
  local entry = redis.call('XADD', events_key, 'MAXLEN', '~', EVENTS_MAXLEN, '*',
    'job', id, 'executor', executor, 'event', event, 'status', status, ...)
  if event ~= 'progress' and event ~= 'log' then
    local p = events_prefix(events_key)
    redis.call('HINCRBY', p .. 'stats', event .. ':' .. executor, 1)
    redis.call('RPUSH', p .. 'history:job_' .. id,
      rfc3339(tonumber(string.match(entry, '^%d+'))) .. ' ' .. status .. ' ' .. event)
  end
end
