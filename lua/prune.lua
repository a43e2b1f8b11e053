--[[
  prune: takes expired jobs out of the listing indexes (includes/index): the oldest `count`
  entries of every ended-status index of every kind and of every owner's index are looked
  at, and an id whose job_N is gone leaves. Jobs mostly expire oldest first, so a few calls
  keep the indexes in step; an entry held behind a longer-kept older job waits for it (and
  is skipped by list.lua meanwhile). Safe to run from any number of processes at once.

  KEYS[1] kinds set       ix:kinds
  KEYS[2] owners set      ix:owners

  ARGV[1] key prefix
  ARGV[2] count           oldest entries looked at per index

  Returns:
    {1, removed}  ids taken out of the indexes
]]
local kinds_key, owners_key = KEYS[1], KEYS[2]
local prefix, count = ARGV[1], tonumber(ARGV[2])
--- @include "includes/keys"

local removed = 0
local function sweep(key)
  for _, id in ipairs(redis.call('ZRANGE', key, 0, count - 1)) do
    if redis.call('EXISTS', key_job(prefix, id)) == 0 then
      redis.call('ZREM', key, id)
      removed = removed + 1
    end
  end
end

for _, kind in ipairs(redis.call('SMEMBERS', kinds_key)) do
  for _, status in ipairs({'COMPLETED', 'FAILED', 'TIMED_OUT', 'CANCELED'}) do
    sweep(key_index(prefix, kind, status))
  end
end
for _, owner in ipairs(redis.call('SMEMBERS', owners_key)) do
  sweep(key_owner_index(prefix, owner))
end
return {1, removed}
