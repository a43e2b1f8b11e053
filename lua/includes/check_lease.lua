--[[
  Function to fence a call made for a running attempt: the job must exist, be RUNNING and
  carry the caller's lease token. Returns nil when the caller holds the lease, else the error
  reply the script must return:
    {-1}          no such job
    {-3, status}  the job is not RUNNING
    {-6, status}  stale lease token (another attempt owns the job)
  check_lease(job_key, token, ...extra fields) -> nil, fields | error reply
]]
local function check_lease(job_key, token, ...)
  local f = redis.call('HMGET', job_key, 'status', 'lease_token', ...)
  if not f[1] then return {-1} end
  if f[1] ~= 'RUNNING' then return {-3, f[1]} end
  if f[2] ~= token then return {-6, f[1]} end
  return nil, f
end
