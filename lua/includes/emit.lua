--[[
  Function to append a state or progress event to the global stream and to the job's own
  stream (events:job_N), both capped with MAXLEN ~ so nothing grows without bound. The entry
  id (<unix ms>-<seq>) is the event's time; readers format it.
  emit(events_key, prefix, id, event, status [, field, value ...])
]]
local EVENTS_MAXLEN = 10000     -- global stream: enough for a dashboard, bounded memory
local JOB_EVENTS_MAXLEN = 1000  -- per job: a long job's progress history, bounded

local function emit(events_key, prefix, id, event, status, ...)
  redis.call('XADD', events_key, 'MAXLEN', '~', EVENTS_MAXLEN, '*',
    'job', id, 'event', event, 'status', status, ...)
  redis.call('XADD', prefix .. 'events:job_' .. id, 'MAXLEN', '~', JOB_EVENTS_MAXLEN, '*',
    'job', id, 'event', event, 'status', status, ...)
end
