--[[
  pipeline_rm: deletes a pipeline softly, as the Workflow Service did: the hash stays (its
  runs still name it) with a `deleted` time, and it leaves the `pipelines` set; it can no
  longer be run or changed.

  KEYS[1] pipeline hash   pipeline_P
  KEYS[2] pipeline ids    pipelines

  ARGV[1] pipeline id     P
  ARGV[2] guard           the pipeline must be owned by this account ('' = any: admin)

  Returns:
    {1}           deleted
    {-1}          no such pipeline (already deleted, or another owner's)   (404)

  Event: none (pipelines are not jobs)
]]
local key, set_key = KEYS[1], KEYS[2]
--- @include "includes/time"

local p = redis.call('HMGET', key, 'id', 'deleted', 'owner')
if not p[1] or p[2] or (ARGV[2] ~= '' and p[3] ~= ARGV[2]) then
  return {-1}
end
local at = rfc3339(now_ms())
redis.call('HSET', key, 'deleted', at, 'updated', at)
redis.call('SREM', set_key, ARGV[1])
return {1}
