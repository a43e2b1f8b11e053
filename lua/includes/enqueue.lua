--[[
  Function to make a job ready: push its id on its executor's queue (at the tail, or at the
  head when `front` is true) and arm the executor kind's wake marker, a one-element list that
  idle claimers BLPOP instead of polling. The marker is capped at one entry so it never piles up.
  enqueue(prefix, id, executor, front)
]]
local function enqueue(prefix, id, executor, front)
  redis.call(front and 'LPUSH' or 'RPUSH', prefix .. 'queue:' .. executor, id)
  local wake = prefix .. 'wake:' .. executor
  redis.call('LPUSH', wake, '1')
  redis.call('LTRIM', wake, 0, 0)
end
