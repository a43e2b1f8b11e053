--[[
  cluster_put: creates or replaces Stand cluster record N (validated by the caller) and
  indexes it in the `clusters` set. Jobs that name the cluster are checked against its
  `enabled` field at submit (lua/includes/create_job.lua).

  KEYS[1] cluster hash    cluster_N
  KEYS[2] clusters set    clusters
  KEYS[3] events stream   events

  ARGV[1] cluster id      N
  ARGV[2..] field, value  name, description, enabled (true|false), type, address, executors,
                          executor_cores, executor_memory, general_parameters, ...

  Returns:
    {1, created}  created = 1 for a new record, 0 for a replaced one

  Event: cluster_put
]]
local cluster_key, clusters_key, events_key = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
--- @include "includes/time"

local created = redis.call('EXISTS', cluster_key) == 0 and 1 or 0
redis.call('DEL', cluster_key)
redis.call('HSET', cluster_key, 'id', id, 'updated', rfc3339(now_ms()), unpack(ARGV, 2))
redis.call('SADD', clusters_key, id)
redis.call('XADD', events_key, 'MAXLEN', '~', 10000, '*', 'event', 'cluster_put',
  'cluster', id)
return {1, created}
