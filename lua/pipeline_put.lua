--[[
  pipeline_put: creates a pipeline (a named job template), or replaces the template of an
  existing one; its id, created time, owner and run counter stay.

  KEYS[1] id counter      pipeline_seq
  KEYS[2] pipeline ids    pipelines

  ARGV[1] key prefix
  ARGV[2] pipeline id     P, or '' for a new one
  ARGV[3] owner           account that creates it ('' = none)
  ARGV[4] guard           a replaced pipeline must be owned by this account ('' = any: admin)
  ARGV[5..] field, value  name, description, executor, params (MessagePack), and optional
                          max_attempts, backoff, timeout, result_ttl (ms), cluster

  Returns:
    {1, id}       created or replaced
    {-1}          no such pipeline (never made, deleted, or another owner's)   (404)

  Event: none (pipelines are not jobs)
]]
--- @include "includes/keys"
local seq_key, set_key = KEYS[1], KEYS[2]
local prefix, id = ARGV[1], ARGV[2]
--- @include "includes/time"

local at = rfc3339(now_ms())
local key
if id == '' then
  id = redis.call('INCR', seq_key)
  key = key_pipeline(prefix, id)
  redis.call('HSET', key, 'id', id, 'owner', ARGV[3], 'created', at, 'runs', 0)
  redis.call('SADD', set_key, id)
else
  key = key_pipeline(prefix, id)
  local p = redis.call('HMGET', key, 'id', 'deleted', 'owner')
  if not p[1] or p[2] or (ARGV[4] ~= '' and p[3] ~= ARGV[4]) then
    return {-1}
  end
  redis.call('HDEL', key, 'description', 'max_attempts', 'backoff', 'timeout', 'result_ttl',
    'cluster')
end
redis.call('HSET', key, 'updated', at, unpack(ARGV, 5))
return {1, tonumber(id)}
