--[[
  pipeline_run: (new) -> PENDING, a run of pipeline P: a job made from the pipeline's
  template (executor, params, and its max_attempts, backoff, timeout, result_ttl, cluster
  where set, else the caller's defaults), numbered by the pipeline's run counter
  (`sequence` 1, 2, ...), with the run's inputs and callback URL as job fields.

  KEYS[1] id counter      job_seq
  KEYS[2] delayed zset    delayed
  KEYS[3] events stream   events
  KEYS[4] pipeline hash   pipeline_P
  KEYS[5] pipeline runs   runs:pipeline_P

  ARGV[1] key prefix
  ARGV[2] pipeline id     P
  ARGV[3] owner           account that started the run ('' = none)
  ARGV[4] start list cap  most entries kept on Stand's `start` list
  ARGV[5] inputs          JSON list of {name, url} or {name, job, artifact} ('' = none)
  ARGV[6] callback_url    POSTed {pipeline_run_uuid, state} on state changes ('' = none)
  ARGV[7] max_attempts    default when the pipeline sets none
  ARGV[8] backoff         ms, default
  ARGV[9] timeout         ms, default
  ARGV[10] result_ttl     ms, default
  ARGV[11] guard          the pipeline must be owned by this account ('' = any: admin)
  ARGV[12] kinds          executor kinds the caller may submit to, as ',a,b,' ('*' = any)
  ARGV[13] held           unix ms until which the run waits for its files (a multipart
                          run, made ready by unhold.lua); '' = none

  Returns:
    {1, id, status, sequence}   the run's job, its status and number
    {-1}                        no such pipeline (never made, deleted, or another owner's)   (404)
    {-8, executor}              the caller may not submit to the pipeline's executor kind   (403)
    {-7, reason}                its cluster is CLUSTER_NOT_FOUND or CLUSTER_DISABLED   (422)

  Event: submitted
]]
local seq_key, delayed_key, events_key = KEYS[1], KEYS[2], KEYS[3]
local pipeline_key, runs_key = KEYS[4], KEYS[5]
local prefix, pid = ARGV[1], ARGV[2]
local RUNS_KEPT = 10000  -- newest run ids listed per pipeline
--- @include "includes/create_job"

local p = redis.call('HMGET', pipeline_key, 'executor', 'params', 'max_attempts', 'backoff',
  'timeout', 'result_ttl', 'cluster', 'deleted', 'owner')
if not p[1] or p[8] or (ARGV[11] ~= '' and p[9] ~= ARGV[11]) then return {-1} end
if ARGV[12] ~= '*' and not string.find(ARGV[12], ',' .. p[1] .. ',', 1, true) then
  return {-8, p[1]}
end
local refusal = cluster_refusal(prefix, p[7])
if refusal then return {-7, refusal} end
local sequence = redis.call('HINCRBY', pipeline_key, 'runs', 1)
local a = {p[1], p[2], p[3] or ARGV[7], p[4] or ARGV[8], p[5] or ARGV[9], p[6] or ARGV[10],
  0, ARGV[3], ARGV[4], 'pipeline', pid, 'sequence', sequence}
if p[7] then a[#a + 1] = 'cluster' a[#a + 1] = p[7] end
if ARGV[5] ~= '' then a[#a + 1] = 'inputs' a[#a + 1] = ARGV[5] end
if ARGV[6] ~= '' then a[#a + 1] = 'callback_url' a[#a + 1] = ARGV[6] end
if ARGV[13] ~= '' then a[#a + 1] = 'held' a[#a + 1] = ARGV[13] end
local id, status = create_job(seq_key, delayed_key, prefix, a)
redis.call('ZADD', runs_key, sequence, id)
redis.call('ZREMRANGEBYRANK', runs_key, 0, -RUNS_KEPT - 1)
return {1, id, status, sequence}
