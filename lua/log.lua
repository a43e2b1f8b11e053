--[[
  log: RUNNING -> RUNNING, appends a batch of the attempt's output lines (spark-submit's,
  GridLAB-D's) to the events stream, where `GET /jobs/N/events` and `sluice events N
  --follow` show them live. Executors batch lines (a few events a second per job at most);
  the whole log is kept as an artifact, since the stream is capped.

  KEYS[1] job hash        job_N
  KEYS[2] events stream   events

  ARGV[1] key prefix
  ARGV[2] job id          N
  ARGV[3] lease token     handed out by claim
  ARGV[4] lines           text, lines separated by \n

  Returns:
    {1}           appended
    {2}           appended, and a stop was requested: the executor must stop the job
    {-1}          no such job                          (404)
    {-3, status}  illegal move: status is not RUNNING  (409)
    {-6, status}  stale lease token                    (409)

  Event: log
]]
local job_key, events_key = KEYS[1], KEYS[2]
local prefix, id, token, lines = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
--- @include "includes/emit"
--- @include "includes/check_lease"

local refused, f = check_lease(job_key, token, 'executor')
if refused then return refused end
emit(prefix, id, f[3], 'log', 'RUNNING', 'lines', lines)
if redis.call('HEXISTS', job_key, 'stop_requested') == 1 then return {2} end
return {1}
