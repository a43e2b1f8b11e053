--[[
  Function to end a job for good: terminal status, finished time, off the lease set, and the
  hash expires after the job's result_ttl (milliseconds, field result_ttl).
  `ttl` is the job's result_ttl when the caller already read it (nil: read here); extra
  field, value pairs are written in the same HSET.
  finish(job_key, leases_key, prefix, id, status, at, ttl, ...) -> nothing
]]
local function finish(job_key, leases_key, prefix, id, status, at, ttl, ...)
  redis.call('HSET', job_key, 'status', status, 'finished', at, 'updated', at, ...)
  redis.call('HDEL', job_key, 'stop_requested')
  redis.call('ZREM', leases_key, id)
  ttl = tonumber(ttl or redis.call('HGET', job_key, 'result_ttl'))
  if ttl and ttl > 0 then
    redis.call('PEXPIRE', job_key, ttl)
  end
end
