--[[
  Function to fence a call made for a running attempt: the job must exist, be RUNNING and
  carry the caller's lease token. Returns nil when the caller holds the lease, else the error
  reply the script must return:
    {-1}          no such job
    {-3, status}  the job is not RUNNING
    {-6, status}  stale lease token (another attempt owns the job)
  check_lease(job_key, token, ...extra fields) -> nil, fields | error reply
  extend_lease(job_key, leases_key, id, token, deadline): the heartbeat of one attempt
  (heartbeat.lua, and presence.lua for each job of an executor): its lease in `leases` runs
  until `deadline` (unix ms) -> {1}, {2} when a stop was requested, or check_lease's error
]]
local function check_lease(job_key, token, ...)
  local f = redis.call('HMGET', job_key, 'status', 'lease_token', ...)
  if not f[1] then return {-1} end
  if f[1] ~= 'RUNNING' then return {-3, f[1]} end
  if f[2] ~= token then return {-6, f[1]} end
  return nil, f
end

local function extend_lease(job_key, leases_key, id, token, deadline)
  local refused, f = check_lease(job_key, token, 'stop_requested')
  if refused then return refused end
  redis.call('ZADD', leases_key, deadline, id)
  return {f[3] and 2 or 1}
end
