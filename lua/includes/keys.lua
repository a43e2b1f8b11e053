--[[
  The key schema inside scripts: every key a script makes from the prefix (ARGV, '' by
  default) is made by one of these, as broker/src/keys.rs makes it in Rust (a test in
  scripts/header_tests.rs checks both agree and that no script builds a key by hand).
  key_of(prefix, name)              events, stats, stop, start, delayed, leases, ...
  key_job(prefix, id)            job_N
  key_history(prefix, id)        history:job_N
  key_workflow(prefix, id)       workflow_W
  key_pipeline(prefix, id)       pipeline_P
  key_cluster(prefix, id)        cluster_N
  key_queue(prefix, executor[, priority])  queue:<executor>, or queue:<executor>:p<N> for
                                 a priority N of 1-9 (0, the default, is the plain queue)
  key_levels(prefix, executor)   levels:<executor>: the priorities above 0 with jobs queued
  key_wake(prefix, executor)     wake:<executor>
  key_schedule(prefix, name)     schedule:<name>
  key_index(prefix, executor, status)  ix:<executor>:<status>: a listing index (includes/index);
                                 status is a terminal status or 'active'
  key_owner_index(prefix, owner)  ixo:<owner>: every job of an owner (includes/index)
  key_concurrency(prefix, executor, key)  concurrency:<executor>:<key>: running jobs
  key_parked(prefix, executor, key)       parked:<executor>:<key>: jobs waiting for a slot
  key_starts(prefix, executor[, key])  starts:<executor>[:<key>]: recent starts (rate limits)
  key_throttled(prefix, executor, key) throttled:<executor>:<key>: jobs waiting for a rate window
  key_throttle(prefix, executor)       throttle:<executor>: rate keys with throttled jobs, by due ms
  key_executor(prefix, worker)         executor:<worker>: a live executor process' info
  key_idempotency(prefix, owner, key)  idempotency:<owner>:<key>
  owned(owner, key)                    <owner>:<key>: a unique, concurrency or rate key is
                                       the owner's own (no owner can hold, fill or throttle
                                       another's); the <key> of the names above is this
  key_unique(prefix, executor, key)    unique:<executor>:<key>
]]
local function owned(owner, key) return (owner or '') .. ':' .. key end
local function key_of(prefix, name) return prefix .. name end
local function key_job(prefix, id) return prefix .. 'job_' .. id end
local function key_history(prefix, id) return prefix .. 'history:job_' .. id end
local function key_workflow(prefix, id) return prefix .. 'workflow_' .. id end
local function key_pipeline(prefix, id) return prefix .. 'pipeline_' .. id end
local function key_cluster(prefix, id) return prefix .. 'cluster_' .. id end
local function key_queue(prefix, executor, priority) return prefix .. 'queue:' .. executor .. ((tonumber(priority) or 0) > 0 and (':p' .. tonumber(priority)) or '') end
local function key_levels(prefix, executor) return prefix .. 'levels:' .. executor end
local function key_wake(prefix, executor) return prefix .. 'wake:' .. executor end
local function key_schedule(prefix, name) return prefix .. 'schedule:' .. name end
local function key_index(prefix, executor, status) return prefix .. 'ix:' .. executor .. ':' .. status end
local function key_owner_index(prefix, owner) return prefix .. 'ixo:' .. owner end
local function key_concurrency(prefix, executor, key) return prefix .. 'concurrency:' .. executor .. ':' .. key end
local function key_parked(prefix, executor, key) return prefix .. 'parked:' .. executor .. ':' .. key end
local function key_starts(prefix, executor, key) return prefix .. 'starts:' .. executor .. (key and (':' .. key) or '') end
local function key_throttled(prefix, executor, key) return prefix .. 'throttled:' .. executor .. ':' .. key end
local function key_throttle(prefix, executor) return prefix .. 'throttle:' .. executor end
local function key_executor(prefix, worker) return prefix .. 'executor:' .. worker end
local function key_idempotency(prefix, owner, key) return prefix .. 'idempotency:' .. owner .. ':' .. key end
local function key_unique(prefix, executor, key) return prefix .. 'unique:' .. executor .. ':' .. key end
