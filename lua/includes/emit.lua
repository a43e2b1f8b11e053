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
  emit(prefix, id, executor, event, status [, field, value ...]): the stream is
  key_of(prefix, 'events'), the counters key_of(prefix, 'stats').
]]
--- @include "includes/time"
--- @include "includes/keys"
local EVENTS_MAXLEN = 10000  -- enough for live followers and a dashboard, bounded memory

local function emit(prefix, id, executor, event, status, ...)
  local entry = redis.call('XADD', key_of(prefix, 'events'), 'MAXLEN', '~', EVENTS_MAXLEN, '*',
    'job', id, 'executor', executor, 'event', event, 'status', status, ...)
  if event ~= 'progress' and event ~= 'log' then
    redis.call('HINCRBY', key_of(prefix, 'stats'), event .. ':' .. executor, 1)
    redis.call('RPUSH', key_history(prefix, id),
      rfc3339(tonumber(string.match(entry, '^%d+'))) .. ' ' .. status .. ' ' .. event)
  end
end
