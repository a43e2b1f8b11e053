--[[
  Function to make a job ready: push its id on its executor's queue (at the tail, or at the
  head when `front` is true). When the queue was empty it also arms the executor kind's wake
  marker, a one-element list that idle claimers BLPOP instead of polling. A non-empty queue
  needs no new marker: claimers always claim before they block, and claim.lua re-arms the
  marker when it leaves ids behind. The marker is capped at one entry so it never piles up.
  enqueue(prefix, id, executor, front)
]]
local function enqueue(prefix, id, executor, front)
  local len = redis.call(front and 'LPUSH' or 'RPUSH', prefix .. 'queue:' .. executor, id)
  local wake = prefix .. 'wake:' .. executor
  if len == 1 and redis.call('LLEN', wake) == 0 then
    redis.call('LPUSH', wake, '1')
  end
end
