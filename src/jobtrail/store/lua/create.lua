-- Create a job record in pending, with its index entries and `created` event, atomically.
-- KEYS[1] = job:<id> hash
-- KEYS[2] = jobs index (sorted set, score created_at in epoch seconds)
-- KEYS[3] = jobs:pending index
-- KEYS[4] = job:<id>:events stream
-- KEYS[5] = stats hash (lifetime counters)
-- KEYS[6] = stats:m:<minute> hash (this minute's counters)
-- KEYS[7] = the events feed stream (recent events of all jobs)
-- ARGV[1] = job id
-- ARGV[2] = created_at (epoch seconds, float as string)
-- ARGV[3] = events stream MAXLEN (approximate; 0 = uncapped)
-- ARGV[4] = problem text
-- ARGV[5] = kind ("" when not known yet)
-- ARGV[6] = seconds the minute hash is kept
-- ARGV[7] = the Celery task id of the batch message carrying the job ("" or absent: none)
-- A create that must not resurrect a purged job (JobStore.create unless_purged) adds:
-- KEYS[8] = tombstone:<id> hash (present: the job was purged, and is never resurrected)
-- and a recreation (JobStore.recreate: the record of a delivered message is missing) also:
-- ARGV[8] = why the record is recreated (the `created` event's `recreated` field)
-- ARGV[9] = the worker recreating it (the event's `worker` field)
-- ARGV[10] = when it is recreated (epoch seconds: the event's `at`; ARGV[2], created_at,
--            is then the delivery's start, so that no start or finish precedes it)
-- Returns: 1 when created, 0 when job:<id> already exists, -1 when KEYS[8] exists
-- (nothing written either way).
-- The field list matches store/codec.py encode_job() for a new job.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if KEYS[8] and redis.call('EXISTS', KEYS[8]) == 1 then
  return -1
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'problem', ARGV[4], 'kind', ARGV[5],
           'status', 'pending', 'created_at', ARGV[2], 'started_at', '', 'finished_at', '',
           'worker', '', 'attempts', '0', 'result', '', 'error', '', 'version', '0')
if ARGV[7] and ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'batch', ARGV[7])
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'created', 1)
redis.call('HINCRBY', KEYS[6], 'created', 1)
redis.call('EXPIRE', KEYS[6], tonumber(ARGV[6]))
local event = {'type', 'created', 'at', ARGV[2], 'status', 'pending'}
if KEYS[8] and ARGV[8] then
  event[4] = ARGV[10]
  table.insert(event, 'recreated')
  table.insert(event, ARGV[8])
  table.insert(event, 'worker')
  table.insert(event, ARGV[9])
end
local maxlen = tonumber(ARGV[3])
if maxlen > 0 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', unpack(event))
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', maxlen * 100, '*', 'job_id', ARGV[1], unpack(event))
else
  redis.call('XADD', KEYS[4], '*', unpack(event))
  redis.call('XADD', KEYS[7], '*', 'job_id', ARGV[1], unpack(event))
end
return 1
