-- Put one archived job back into the main DB atomically, unless it is live.
-- KEYS[1] = job:<id> hash
-- KEYS[2] = jobs index (score created_at, epoch seconds)
-- KEYS[3] = jobs:<status> index of the job's status (score = finished_at for a
--           terminal job, epoch seconds)
-- KEYS[4] = job:<id>:events stream
-- KEYS[5] = tombstone:<id> hash
-- KEYS[6] = stats hash, KEYS[7] = stats:m:<minute> hash, KEYS[8] = events feed stream
-- ARGV[1] = job id
-- ARGV[2] = created_at (epoch seconds), the `jobs` score
-- ARGV[3] = the `jobs:<status>` score (epoch seconds)
-- ARGV[4] = restored_at (epoch seconds)
-- ARGV[5] = restore run id
-- ARGV[6] = archive location (URL, password masked)
-- ARGV[7] = events stream MAXLEN (approximate; 0 = uncapped)
-- ARGV[8] = n, the number of hash field/value pairs that follow
-- ARGV[9 .. 8+2n] = every field/value pair of the archived hash
-- ARGV[9+2n] = m, the number of archived events that follow, each written
--              only when the events stream has expired since the purge:
--              <stream id or "*">, <k>, then k field/value pairs
-- ARGV[last] = seconds the minute stats hash is kept
-- Returns: "restored" | "conflict" (job:<id> exists: nothing written)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'conflict'
end
local n = tonumber(ARGV[8])
local fields = {}
for i = 9, 8 + 2 * n do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('DEL', KEYS[5])
local pos = 9 + 2 * n
local m = tonumber(ARGV[pos])
pos = pos + 1
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('PERSIST', KEYS[4])
else
  for _ = 1, m do
    local id = ARGV[pos]
    local k = tonumber(ARGV[pos + 1])
    local entry = {}
    for j = pos + 2, pos + 1 + 2 * k do
      entry[#entry + 1] = ARGV[j]
    end
    redis.call('XADD', KEYS[4], id, unpack(entry))
    pos = pos + 2 + 2 * k
  end
end
local event = {'type', 'restored', 'at', ARGV[4], 'run_id', ARGV[5], 'archive', ARGV[6],
               'status', redis.call('HGET', KEYS[1], 'status') or ''}
local maxlen = tonumber(ARGV[7])
if maxlen > 0 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', unpack(event))
else
  redis.call('XADD', KEYS[4], '*', unpack(event))
end
redis.call('XADD', KEYS[8], 'MAXLEN', '~', math.max(maxlen, 1) * 100, '*', 'job_id', ARGV[1],
           unpack(event))
redis.call('HINCRBY', KEYS[6], 'restored', 1)
redis.call('HINCRBY', KEYS[7], 'restored', 1)
redis.call('EXPIRE', KEYS[7], tonumber(ARGV[#ARGV]))
return 'restored'
