-- Move a job to a new status atomically: check, write fields, move index entry, append
-- event, count it in the statistics.
-- KEYS[1] = job:<id> hash
-- KEYS[2] = job:<id>:events stream
-- KEYS[3] = jobs:<to> index (score = now, epoch seconds)
-- KEYS[4] = stats hash (lifetime counters and latency histogram)
-- KEYS[5] = stats:m:<minute> hash (this minute's counters and latency histogram)
-- KEYS[6] = the events feed stream (recent events of all jobs)
-- KEYS[7] = stats:node:<name> hash of the worker node finishing the job (see ARGV[11]), or ""
-- KEYS[8..] = jobs:<s> index of every status the job may be leaving (its entry is removed)
-- ARGV[1] = job id
-- ARGV[2] = target status
-- ARGV[3] = allowed source statuses, comma separated (from models.TRANSITIONS)
-- ARGV[4] = now (epoch seconds)
-- ARGV[5] = expectation: "" for none; "v:<n>" refuses unless `version` is n; "r:<token>"
--           refuses unless `run` (the token the worker's start wrote) is token, and is a
--           no-op ("same") when that run already moved the job to the target status; also
--           refused ("conflict") on a pending job: a requeue or a dead-worker sweep took it
--           back from that run (the token stays in `run` until the next start);
--           "s:<token>" is a delivery's start: a no-op ("same") when run <token> started
--           the job already, and when another run left it processing (its worker was
--           lost: the broker redelivered), a `redelivered` event first, in the same step;
--           that event's reason is the `lost` field (JobStore.note_lost), if any;
--           every start clears `lost`;
--           "s:<token>|<batch>" is a start by batch message <batch>'s delivery: refused
--           ("moved") when the record no longer names that batch (requeued alone)
-- ARGV[6] = "" to leave attempts alone; "0" to add 1 to attempts; n > 0 to add 1 unless
--           attempts >= n already (then nothing is written: exhausted)
-- ARGV[7] = events stream MAXLEN (approximate; 0 = uncapped); the feed keeps 100 times more
-- ARGV[8] = event type
-- ARGV[9] = latency histogram upper bounds in seconds, comma separated, ascending; when
--           set, (now - started_at) is counted in the first bucket it fits ("inf" last)
-- ARGV[10] = seconds the minute hash is kept
-- ARGV[11] = "" to count nothing on a node; else the seconds KEYS[7] is kept, and a job
--            this step finishes (with ARGV[9] set) is counted there: `completed` or
--            `failed:<ARGV[13]>`, its queue wait (started_at - created_at) and its solve time
--            (finished_at - started_at, under kind ARGV[12]) in the histograms; a retried
--            step ("same") counts nothing again (store.node_stats reads the hash)
-- ARGV[12] = the job's bounded kind label; ARGV[13] = its bounded failure reason label
-- ARGV[14] = n, the number of hash field/value pairs that follow
-- ARGV[15 .. 14+2n] = hash field, value pairs; the rest = extra event field, value pairs
-- Returns: {"ok", <HGETALL after>} | {"same", <HGETALL>} | {"missing"}
--          | {"invalid", <status>} | {"conflict", <version>} | {"exhausted", <attempts>}
--          | {"moved", <the batch the record names, or "">}
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing'}
end
local status = redis.call('HGET', KEYS[1], 'status')
local expect = ARGV[5]
local kind, want = string.sub(expect, 1, 1), string.sub(expect, 3)
local batch = nil
local bar = string.find(want, '|', 1, true)
if kind == 's' and bar then
  batch, want = string.sub(want, bar + 1), string.sub(want, 1, bar - 1)
end
local run = redis.call('HGET', KEYS[1], 'run') or ''
if (kind == 'r' or kind == 's') and want == run
    and (status == ARGV[2] or (kind == 's' and status ~= 'pending')) then
  return {'same', redis.call('HGETALL', KEYS[1])}  -- a retried write of this run's own step
end
if kind == 'r' and status == 'pending' then
  -- taken back from run <token> (requeued, or its worker read gone): its outcome is late
  return {'conflict', redis.call('HGET', KEYS[1], 'version') or '0'}
end
if batch then
  local named = redis.call('HGET', KEYS[1], 'batch') or ''
  if named ~= batch then
    return {'moved', named}  -- requeued alone: the batch's delivery leaves it
  end
end
local maxlen = tonumber(ARGV[7])
local function append_event(event)
  if maxlen > 0 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', unpack(event))
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', maxlen * 100, '*', 'job_id', ARGV[1],
               unpack(event))
  else
    redis.call('XADD', KEYS[2], '*', unpack(event))
    redis.call('XADD', KEYS[6], '*', 'job_id', ARGV[1], unpack(event))
  end
end
local function count(event_type)
  redis.call('HINCRBY', KEYS[4], event_type, 1)
  redis.call('HINCRBY', KEYS[5], event_type, 1)
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[10]))
end
local function exhausted()
  if ARGV[6] == '' then return nil end
  local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
  local max_attempts = tonumber(ARGV[6])
  if max_attempts > 0 and attempts >= max_attempts then return tostring(attempts) end
  return nil
end
if kind == 's' and status == 'processing' then
  -- another run left the job processing: its worker was lost and the broker redelivered
  local spent = exhausted()
  if spent then
    return {'exhausted', spent}
  end
  local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
  redis.call('HSET', KEYS[1], 'status', 'pending', 'version', tostring(version + 1))
  count('redelivered')
  local event = {'type', 'redelivered', 'at', ARGV[4], 'from', 'processing',
                 'status', 'pending', 'attempt', redis.call('HGET', KEYS[1], 'attempts') or '0',
                 'previous_worker', redis.call('HGET', KEYS[1], 'worker') or ''}
  local lost = redis.call('HGET', KEYS[1], 'lost') or ''
  if lost ~= '' then
    event[#event + 1] = 'reason'  -- the cause the lost run's main process recorded
    event[#event + 1] = lost
  end
  append_event(event)
  status = 'pending'
end
local allowed = false
for s in string.gmatch(ARGV[3], '[^,]+') do
  if s == status then allowed = true end
end
if not allowed then
  return {'invalid', status}
end
local version = redis.call('HGET', KEYS[1], 'version') or '0'
if (kind == 'v' and want ~= version) or (kind == 'r' and want ~= run) then
  return {'conflict', version}
end
if ARGV[6] ~= '' then
  local spent = exhausted()
  if spent then
    return {'exhausted', spent}
  end
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
end
if kind == 's' then
  redis.call('HDEL', KEYS[1], 'lost')  -- a start leaves no earlier run's cause behind
end
local n = tonumber(ARGV[14])
local fields = {'status', ARGV[2], 'version', tostring(tonumber(version) + 1)}
for i = 15, 14 + 2 * n do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
for i = 8, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
-- statistics: counts per event type, and for finished jobs the processing latency
count(ARGV[8])
local function bucket_of(seconds)
  for b in string.gmatch(ARGV[9], '[^,]+') do
    if seconds <= tonumber(b) then return b end
  end
  return 'inf'
end
if ARGV[9] ~= '' and ARGV[11] ~= '' then
  local node = KEYS[7]
  redis.call('HINCRBY', node, ARGV[2] == 'completed' and 'completed' or ('failed:' .. ARGV[13]), 1)
  local at = redis.call('HMGET', KEYS[1], 'created_at', 'started_at', 'finished_at')
  local created, started, finished = tonumber(at[1] or ''), tonumber(at[2] or ''),
                                     tonumber(at[3] or '')
  if created and started then
    local wait = math.max(0, started - created)
    redis.call('HINCRBY', node, 'wait:le:' .. bucket_of(wait), 1)
    redis.call('HINCRBYFLOAT', node, 'wait:sum_s', wait)
  end
  if started and finished then
    local solve = math.max(0, finished - started)
    redis.call('HINCRBY', node, 'solve:' .. ARGV[12] .. ':le:' .. bucket_of(solve), 1)
    redis.call('HINCRBYFLOAT', node, 'solve:' .. ARGV[12] .. ':sum_s', solve)
  end
  redis.call('EXPIRE', node, tonumber(ARGV[11]))
end
if ARGV[9] ~= '' then
  local started = tonumber(redis.call('HGET', KEYS[1], 'started_at') or '')
  if started then
    local latency = tonumber(ARGV[4]) - started
    local bucket = bucket_of(latency)
    redis.call('HINCRBY', KEYS[4], 'latency_le_' .. bucket, 1)
    redis.call('HINCRBYFLOAT', KEYS[4], 'latency_sum_s', latency)
    redis.call('HINCRBY', KEYS[5], 'latency_le_' .. bucket, 1)
  end
end
local event = {'type', ARGV[8], 'at', ARGV[4], 'from', status, 'status', ARGV[2],
               'attempt', redis.call('HGET', KEYS[1], 'attempts') or '0'}
for i = 15 + 2 * n, #ARGV do
  event[#event + 1] = ARGV[i]
end
append_event(event)
return {'ok', redis.call('HGETALL', KEYS[1])}
