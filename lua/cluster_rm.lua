--[[
  cluster_rm: deletes Stand cluster record N. Jobs already submitted keep the id in their
  `cluster` field; new jobs naming it are refused.

  KEYS[1] cluster hash    cluster_N
  KEYS[2] clusters set    clusters
  KEYS[3] events stream   events

  ARGV[1] cluster id      N

  Returns:
    {1}    deleted
    {-1}   no such cluster                                    (404)

  Event: cluster_rm
]]
local cluster_key, clusters_key, events_key = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]

if redis.call('DEL', cluster_key) == 0 then return {-1} end
redis.call('SREM', clusters_key, id)
redis.call('XADD', events_key, 'MAXLEN', '~', 10000, '*', 'event', 'cluster_rm', 'cluster', id)
return {1}
