--[[
  list: one page of jobs, newest first, from the listing indexes (includes/index), and how
  many jobs each status holds under the same kind and owner filter.
  - Without an owner: an ended status' page is the top of ix:<executor>:<STATUS> (O(page));
    the waiting and running ones are found walking ix:<executor>:active newest first and
    keeping the wanted statuses. Counts: ZCARD of each ended index; of the active ones,
    PENDING = the queues' lengths, RUNNING = the leases of the kind, SCHEDULED = the rest
    (jobs parked for a concurrency slot or a rate window count there).
  - With an owner: ixo:<owner> walked newest first, keeping the wanted status and kind
    (an id whose job expired leaves the index on the way). Counts: over the owner's newest
    COUNT_WINDOW jobs (exact = 0 when the owner has more). Reading a job per id costs ~4 us
    inside a script, so those counts are kept in the hash ix:owner_counts (field
    "<executor>|<owner>" (a kind has no |), value "<ms>,<seen>,<7 counts>,<exact>") and reused while `seen`
    holds (no state event since: the last id of the events stream; the same number of jobs
    in ixo:<owner>) for at most COUNTS_FRESH_MS (an expired job emits no event). One field
    per owner and kind asked for; a field is rewritten, never added twice.
  A walk looks at no more than `budget` ids; a page cut short so ends early, with `next` set
  where the walk stopped: the caller continues from there. Nothing is listed twice.

  KEYS[1] kinds set       ix:kinds

  ARGV[1] key prefix
  ARGV[2] wanted          comma-separated statuses to list ("" = every status)
  ARGV[3] executor        one kind; "" = every kind in ix:kinds
  ARGV[4] owner           one owner's jobs; "" = anyone's
  ARGV[5] before          only ids below this one (a previous page's next); 0 = from the newest
  ARGV[6] limit           most ids
  ARGV[7] budget          most ids a walk looks at

  Returns:
    {1, counts, ids, next, exact}  counts: SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED,
                                   TIMED_OUT, CANCELED; ids newest first; next: the id to
                                   continue below (0: no more); exact: 1 when counts are
]]
local kinds_key = KEYS[1]
local prefix, executor, owner = ARGV[1], ARGV[3], ARGV[4]
local before, limit, budget = tonumber(ARGV[5]) or 0, tonumber(ARGV[6]) or 50, tonumber(ARGV[7]) or 1000
--- @include "includes/keys"
--- @include "includes/time"
local ALL = {'SCHEDULED', 'PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'TIMED_OUT', 'CANCELED'}
local ENDED = {'COMPLETED', 'FAILED', 'TIMED_OUT', 'CANCELED'}
local COUNT_WINDOW = 1000
local COUNTS_FRESH_MS = 2000

local wanted = {}
for s in string.gmatch(ARGV[2], '[^,]+') do wanted[s] = true end
if ARGV[2] == '' then for _, s in ipairs(ALL) do wanted[s] = true end end
local kinds = {executor}
if executor == '' then kinds = redis.call('SMEMBERS', kinds_key) end
local top = before > 0 and ('(' .. before) or '+inf'
local counts = {}
for _, s in ipairs(ALL) do counts[s] = 0 end

-- Newest first below `top`, the ids of `key` that `keep` admits, until limit of them or
-- budget looked at; returns them and the last id looked at when the budget ran out (0).
local function walk(key, keep)
  local found, cursor, looked = {}, top, 0
  while #found < limit do
    local chunk = redis.call('ZREVRANGEBYSCORE', key, cursor, '-inf', 'LIMIT', 0, 100)
    if #chunk == 0 then return found, 0 end
    for _, id in ipairs(chunk) do
      looked = looked + 1
      cursor = '(' .. id
      if keep(id) then found[#found + 1] = tonumber(id) end
      if #found == limit then return found, 0 end
      if looked >= budget then return found, tonumber(id) end
    end
  end
  return found, 0
end

local ids, stop = {}, 0
local function take(found, at)
  for _, id in ipairs(found) do ids[#ids + 1] = tonumber(id) end
  if at > stop then stop = at end
end

local exact = 1
if owner ~= '' then
  local key = key_owner_index(prefix, owner)
  local function fields(id)
    local f = redis.call('HMGET', key_job(prefix, id), 'status', 'executor')
    if not f[1] then redis.call('ZREM', key, id) end
    return f
  end
  take(walk(key, function(id)
    local f = fields(id)
    return f[1] and wanted[f[1]] and (executor == '' or f[2] == executor)
  end))
  local cache, field, now = key_of(prefix, 'ix:owner_counts'), executor .. '|' .. owner, now_ms()
  local last = redis.call('XREVRANGE', key_of(prefix, 'events'), '+', '-', 'COUNT', 1)[1]
  local seen = (last and last[1] or '0') .. '/' .. redis.call('ZCARD', key)
  local kept = {}
  for part in string.gmatch(redis.call('HGET', cache, field) or '', '[^,]+') do
    kept[#kept + 1] = part
  end
  if #kept == #ALL + 3 and kept[2] == seen and now - tonumber(kept[1]) < COUNTS_FRESH_MS then
    for i, s in ipairs(ALL) do counts[s] = tonumber(kept[i + 2]) end
    exact = tonumber(kept[#ALL + 3])
  else
    if redis.call('ZCARD', key) > COUNT_WINDOW then exact = 0 end
    for _, id in ipairs(redis.call('ZREVRANGE', key, 0, COUNT_WINDOW - 1)) do
      local f = fields(id)
      if f[1] and (executor == '' or f[2] == executor) then counts[f[1]] = counts[f[1]] + 1 end
    end
    local packed = {now, seen}
    for _, s in ipairs(ALL) do packed[#packed + 1] = counts[s] end
    packed[#packed + 1] = exact
    redis.call('HSET', cache, field, table.concat(packed, ','))
  end
else
  local running = {}
  for _, id in ipairs(redis.call('ZRANGE', key_of(prefix, 'leases'), 0, -1)) do
    local kind = redis.call('HGET', key_job(prefix, id), 'executor')
    if kind then running[kind] = (running[kind] or 0) + 1 end
  end
  for _, kind in ipairs(kinds) do
    for _, s in ipairs(ENDED) do
      local key = key_index(prefix, kind, s)
      counts[s] = counts[s] + redis.call('ZCARD', key)
      if wanted[s] then
        take(redis.call('ZREVRANGEBYSCORE', key, top, '-inf', 'LIMIT', 0, limit), 0)
      end
    end
    local active_key = key_index(prefix, kind, 'active')
    local pending = redis.call('LLEN', key_queue(prefix, kind, 0))
    for _, p in ipairs(redis.call('ZRANGE', key_levels(prefix, kind), 0, -1)) do
      pending = pending + redis.call('LLEN', key_queue(prefix, kind, p))
    end
    local run = running[kind] or 0
    counts.PENDING = counts.PENDING + pending
    counts.RUNNING = counts.RUNNING + run
    counts.SCHEDULED = counts.SCHEDULED + math.max(0, redis.call('ZCARD', active_key) - pending - run)
    if wanted.SCHEDULED or wanted.PENDING or wanted.RUNNING then
      take(walk(active_key, function(id)
        local s = redis.call('HGET', key_job(prefix, id), 'status')
        return s and wanted[s]
      end))
    end
  end
end

table.sort(ids, function(a, b) return a > b end)
local page, next_id = {}, 0
for _, id in ipairs(ids) do
  if #page == limit or id < stop then break end
  page[#page + 1] = id
end
if #page == limit then next_id = page[limit] elseif stop > 0 then next_id = stop end
local out = {}
for i, s in ipairs(ALL) do out[i] = counts[s] end
return {1, out, page, next_id, exact}
