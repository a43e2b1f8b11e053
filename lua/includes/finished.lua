--[[
  Function to index a job that ended for good in its kind's `finished:<executor>` zset
  (score: when it ended, unix ms), keeping the newest FINISHED_CAP per kind: the recent
  history that lists read newest first (`GET /jobs?finished=true&executor=K`) long after the
  events stream has moved on. An entry whose job has expired is skipped by readers (and
  removed by them); the cap bounds the zset whatever the retention, and the zset expires
  with the longest-kept job in it (`ttl`, the job's result_ttl in ms: not positive = kept
  for good; nil = leave the zset's expiry as it is).
  index_finished(prefix, id, executor, ttl)
]]
--- @include "includes/keys"
--- @include "includes/time"
local FINISHED_CAP = 10000

local function index_finished(prefix, id, executor, ttl)
  local key = key_finished(prefix, executor)
  redis.call('ZADD', key, now_ms(), id)
  if redis.call('ZCARD', key) > FINISHED_CAP then
    redis.call('ZREMRANGEBYRANK', key, 0, -(FINISHED_CAP + 1))
  end
  ttl = tonumber(ttl)
  if not ttl then return end
  if ttl <= 0 then
    redis.call('PERSIST', key)
    return
  end
  -- No expiry (-1) means a kept-for-good job is in it, unless this entry just made the key.
  local left = redis.call('PTTL', key)
  local fresh = left == -1 and redis.call('ZCARD', key) == 1
  if (left >= 0 and left < ttl) or fresh then
    redis.call('PEXPIRE', key, ttl)
  end
end
