-- Purge archived jobs: check, delete, unindex, tombstone, event.
-- The caller has already COMMITTED and verified every job's archive row. One call
-- takes one or more jobs (a pipelined chunk) and is one atomic step: Redis runs the
-- whole script without interleaving another command, and replicates its effects as
-- one MULTI/EXEC. A job whose record changed since it was archived is left untouched.
-- KEYS[1] = jobs index (sorted set)
-- KEYS[2 .. 1+S] = jobs:<status> index of every status (the entry is removed from each)
-- KEYS[2+S] = stats hash, KEYS[3+S] = stats:m:<minute> hash, KEYS[4+S] = events feed stream
--             (one `purged` entry per call: job_id = first purged id, count, last_job_id)
-- KEYS[5+S+3(i-1) .. 7+S+3(i-1)] = for job i: job:<id> hash, job:<id>:events stream,
--                                   tombstone:<id> hash
-- ARGV[1] = purged_at (epoch seconds, float as string; the archive row's value)
-- ARGV[2] = policy name
-- ARGV[3] = archive location (URL, password masked)
-- ARGV[4] = purge run id
-- ARGV[5] = tombstone TTL (milliseconds); the events stream gets the same TTL
-- ARGV[6] = events stream MAXLEN (approximate; 0 = uncapped)
-- ARGV[7] = S, the number of status indexes in KEYS
-- ARGV[8] = seconds the minute stats hash is kept
-- ARGV[9+3(i-1) .. 11+3(i-1)] = for job i: job id, archived status, archived version
-- Returns: one outcome per job, in order: "purged"
--          | "missing" (no job:<id>: nothing written)
--          | "changed" (status or version differ from the archived record: nothing written)
local s = tonumber(ARGV[7])
local maxlen = tonumber(ARGV[6])
local feed_maxlen = math.max(maxlen, 1) * 100
local out = {}
local n = (#ARGV - 8) / 3
local ids = {}
for i = 0, n - 1 do
  local id, status, version = ARGV[9 + 3 * i], ARGV[10 + 3 * i], ARGV[11 + 3 * i]
  local job, events, tomb = KEYS[5 + s + 3 * i], KEYS[6 + s + 3 * i], KEYS[7 + s + 3 * i]
  local now = redis.call('HMGET', job, 'status', 'version')
  if not now[1] then
    out[#out + 1] = 'missing'
  elseif now[1] ~= status or (now[2] or '0') ~= version then
    out[#out + 1] = 'changed'
  else
    redis.call('DEL', job)
    -- every tombstone has these six fields, so HSET replaces an older one entirely
    redis.call('HSET', tomb, 'job_id', id, 'purged_at', ARGV[1], 'policy', ARGV[2],
               'archive', ARGV[3], 'run_id', ARGV[4], 'status', status)
    redis.call('PEXPIRE', tomb, ARGV[5])
    local event = {'type', 'purged', 'at', ARGV[1], 'policy', ARGV[2], 'archive', ARGV[3],
                   'run_id', ARGV[4], 'status', status}
    if maxlen > 0 then
      redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', unpack(event))
    else
      redis.call('XADD', events, '*', unpack(event))
    end
    redis.call('PEXPIRE', events, ARGV[5])
    ids[#ids + 1] = id
    out[#out + 1] = 'purged'
  end
end
-- the index entries of every purged job, a few hundred ids per ZREM
for first = 1, #ids, 500 do
  local last = math.min(first + 499, #ids)
  for k = 1, 1 + s do
    redis.call('ZREM', KEYS[k], unpack(ids, first, last))
  end
end
if #ids > 0 then
  -- one feed entry for the whole call, not one per job: a large purge must not push
  -- every other job's recent events out of the capped feed
  redis.call('XADD', KEYS[4 + s], 'MAXLEN', '~', feed_maxlen, '*', 'job_id', ids[1],
             'count', #ids, 'last_job_id', ids[#ids], 'type', 'purged', 'at', ARGV[1],
             'policy', ARGV[2], 'archive', ARGV[3], 'run_id', ARGV[4])
  redis.call('HINCRBY', KEYS[2 + s], 'purged', #ids)
  redis.call('HINCRBY', KEYS[3 + s], 'purged', #ids)
  redis.call('EXPIRE', KEYS[3 + s], tonumber(ARGV[8]))
end
return out
