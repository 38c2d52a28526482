-- Purge one archived job atomically: check, delete, unindex, tombstone, `purged` event.
-- The caller has already COMMITTED and verified the job's archive row.
-- KEYS[1] = job:<id> hash
-- KEYS[2] = jobs index (sorted set)
-- KEYS[3] = job:<id>:events stream
-- KEYS[4] = tombstone:<id> hash
-- KEYS[5..] = jobs:<status> index of every status (the entry is removed from each)
-- ARGV[1] = job id
-- ARGV[2] = status the archived record had
-- ARGV[3] = version the archived record had
-- ARGV[4] = purged_at (epoch seconds, float as string; the archive row's value)
-- ARGV[5] = policy name
-- ARGV[6] = archive location (URL, password masked)
-- ARGV[7] = purge run id
-- ARGV[8] = tombstone TTL (milliseconds); the events stream gets the same TTL
-- ARGV[9] = events stream MAXLEN (approximate; 0 = uncapped)
-- Returns: "purged" | "missing" (no job:<id>: nothing written)
--          | "changed" (status or version differ from the archived record: nothing written)
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 'missing'
end
local now = redis.call('HMGET', KEYS[1], 'status', 'version')
if now[1] ~= ARGV[2] or (now[2] or '0') ~= ARGV[3] then
  return 'changed'
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
for i = 5, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], 'job_id', ARGV[1], 'purged_at', ARGV[4], 'policy', ARGV[5],
           'archive', ARGV[6], 'run_id', ARGV[7], 'status', ARGV[2])
redis.call('PEXPIRE', KEYS[4], ARGV[8])
local event = {'type', 'purged', 'at', ARGV[4], 'policy', ARGV[5], 'archive', ARGV[6],
               'run_id', ARGV[7], 'status', ARGV[2]}
local maxlen = tonumber(ARGV[9])
if maxlen > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', unpack(event))
else
  redis.call('XADD', KEYS[3], '*', unpack(event))
end
redis.call('PEXPIRE', KEYS[3], ARGV[8])
return 'purged'
