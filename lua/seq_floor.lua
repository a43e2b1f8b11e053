--[[
  seq_floor: raises the job id counter to at least N, never lowers it. Sluice's artifact
  store outlives Redis data: after Redis is restored from an older snapshot, the counter is
  behind ids whose artifacts are still stored, and a new job must not take such an id (and
  with it another job's files). The artifact sweep calls this with the highest id it finds.

  KEYS[1] id counter      job_seq

  ARGV[1] floor           N

  Returns:
    {1, seq}      the counter after the call

  Event: none (no job changes)
]]
local seq_key = KEYS[1]
local floor = tonumber(ARGV[1])
local seq = tonumber(redis.call('GET', seq_key) or '0')
if seq < floor then
  redis.call('SET', seq_key, floor)
  seq = floor
end
return {1, seq}
