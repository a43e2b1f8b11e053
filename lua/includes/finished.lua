--[[
  Function to index a job that ended for good at the head of its kind's `finished:<executor>`
  list, newest first, keeping about the newest FINISHED_CAP per kind (trimmed back to it
  once it is a tenth over, so most calls are one LPUSH): the recent history that lists read
  (`GET /jobs?finished=true&executor=K`) long after the events stream has moved on. A reader
  skips the entry of a job that has expired. The list expires with the longest-kept job in
  it (`ttl`, the job's result_ttl in ms, plus a tenth, extended only when it would
  otherwise end first; not positive = kept for good; nil = leave the expiry as it is).
  A list, not a zset: LPUSH costs a fraction of a ZADD on the drain path (measured: a zset
  index took 25% of the drain rate).
  index_finished(prefix, id, executor, ttl)
]]
--- @include "includes/keys"
local FINISHED_CAP = 10000

local function index_finished(prefix, id, executor, ttl)
  local key = key_finished(prefix, executor)
  local n = redis.call('LPUSH', key, id)
  if n > FINISHED_CAP + FINISHED_CAP / 10 then
    redis.call('LTRIM', key, 0, FINISHED_CAP - 1)
  end
  ttl = tonumber(ttl)
  if not ttl then return end
  if ttl <= 0 then
    redis.call('PERSIST', key)
    return
  end
  -- No expiry (-1) means a kept-for-good job is in it, unless this entry just made the key.
  local left = redis.call('PTTL', key)
  if (left >= 0 and left < ttl) or (left == -1 and n == 1) then
    redis.call('PEXPIRE', key, ttl + math.floor(ttl / 10))
  end
end
