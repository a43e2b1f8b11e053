--[[
  Functions to keep the listing indexes that GET /jobs and the console page through, newest
  first, without a write on the claim path and one on the complete path (every write in a
  script costs: a zset move per state change took 40% of the drain rate, README, Listing):
    ix:<executor>:active     a kind's jobs that have not ended (SCHEDULED, PENDING, RUNNING)
    ix:<executor>:<STATUS>   a kind's jobs that ended so (COMPLETED, FAILED, TIMED_OUT, CANCELED)
    ixo:<owner>              every job of an owner, whatever its status
    ix:kinds, ix:owners      the kinds and owners indexed
  zsets of job ids scored by the id itself: ids grow with time, so the highest score is the
  newest job. lua/list.lua pages through them; lua/prune.lua takes expired jobs out.
  index_created(prefix, id, executor, owner): a new job (create_job)
  index_ended(prefix, id, executor, status): a job ended for good (finish, a workflow's
    cancellation of a waiting member)
  index_revived(prefix, id, executor, status): an ended job runs again (retry.lua)
]]
--- @include "includes/keys"
local function index_created(prefix, id, executor, owner)
  redis.call('ZADD', key_index(prefix, executor, 'active'), id, id)
  redis.call('ZADD', key_owner_index(prefix, owner or ''), id, id)
  redis.call('SADD', key_of(prefix, 'ix:kinds'), executor)
  redis.call('SADD', key_of(prefix, 'ix:owners'), owner or '')
end

local function index_ended(prefix, id, executor, status)
  redis.call('ZREM', key_index(prefix, executor, 'active'), id)
  redis.call('ZADD', key_index(prefix, executor, status), id, id)
end

local function index_revived(prefix, id, executor, status)
  redis.call('ZREM', key_index(prefix, executor, status), id)
  redis.call('ZADD', key_index(prefix, executor, 'active'), id, id)
end
