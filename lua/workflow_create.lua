--[[
  workflow_create: (new) -> a workflow and all its member jobs at once. Members without
  parents are PENDING on their queues; the others are SCHEDULED with waiting_on = their
  parent count, in no queue, until includes/workflow releases them. Nodes come in a
  topological order (parents before children; the API checks the graph), so a node's
  parents are named by their 1-based position among the nodes before it.

  KEYS[1] id counter      job_seq
  KEYS[2] delayed zset    delayed
  KEYS[3] events stream   events
  KEYS[4] workflow ids    workflow_seq

  ARGV[1] key prefix
  ARGV[2] name            the workflow's name
  ARGV[3] owner           account that submitted it ('' = none)
  ARGV[4] on_failure      all | descendants
  ARGV[5] result_ttl      ms the workflow and its jobs are kept once it ends
  ARGV[6] inputs          JSON of the run's inputs, kept for people
  ARGV[7] node count      n
  ARGV[8..] n blocks: node name, parent positions (comma-separated, '' = none), then the
          job as create_job takes it (executor, params, max_attempts, backoff ms,
          timeout ms, result_ttl ms, run_at 0, owner, start list cap), the number of
          extra field, value pairs, and the pairs

  Returns:
    {1, workflow id, {job id, ...}}   created; job ids in node order
    {-7, reason, node name}           a node's cluster is CLUSTER_NOT_FOUND or
                                      CLUSTER_DISABLED; nothing was created   (422)

  Event: submitted, once per member
]]
--- @include "includes/keys"
local seq_key, delayed_key, events_key, wf_seq_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix = ARGV[1]
--- @include "includes/create_job"

-- Read every block first: a refusal must come before anything is written.
local nodes, i = {}, 8
for _ = 1, tonumber(ARGV[7]) do
  local node = {name = ARGV[i], parents = {}, args = {}}
  for p in string.gmatch(ARGV[i + 1], '%d+') do node.parents[#node.parents + 1] = tonumber(p) end
  for j = 0, 8 do node.args[#node.args + 1] = ARGV[i + 2 + j] end
  local extras = tonumber(ARGV[i + 11])
  for j = 1, 2 * extras do node.args[#node.args + 1] = ARGV[i + 11 + j] end
  i = i + 12 + 2 * extras
  local refusal = cluster_refusal(prefix, job_extras(node.args).cluster)
  if refusal then return {-7, refusal, node.name} end
  nodes[#nodes + 1] = node
end

local wf = redis.call('INCR', wf_seq_key)
local wf_key = key_workflow(prefix, wf)
local at = rfc3339(now_ms())
local ids, kids = {}, {}
for n, node in ipairs(nodes) do
  local parents = {}
  for _, p in ipairs(node.parents) do
    parents[#parents + 1] = ids[p]
    kids[p] = kids[p] or {}
    table.insert(kids[p], n)
  end
  local a = node.args
  for _, v in ipairs({'workflow', wf, 'node', node.name}) do a[#a + 1] = v end
  if #parents > 0 then
    for _, v in ipairs({'depends_on', table.concat(parents, ','), 'waiting_on', #parents}) do
      a[#a + 1] = v
    end
  end
  ids[n] = create_job(seq_key, delayed_key, prefix, a)
end
for p, children in pairs(kids) do
  local list = {}
  for _, c in ipairs(children) do list[#list + 1] = ids[c] end
  redis.call('HSET', key_job(prefix, ids[p]), 'dependents', table.concat(list, ','))
end
redis.call('HSET', wf_key, 'id', wf, 'name', ARGV[2], 'owner', ARGV[3], 'status', 'NOT_STARTED',
  'on_failure', ARGV[4], 'result_ttl', ARGV[5], 'inputs', ARGV[6], 'list_cap', nodes[1].args[9],
  'jobs', table.concat(ids, ','), 'total', #ids, 'done', 0, 'completed', 0,
  'created', at, 'updated', at)
return {1, wf, ids}
