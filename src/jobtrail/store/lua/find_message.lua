-- Find a job's message in the broker DB: waiting in the queue list, or reserved (unacked).
-- Read-only. kombu publishes with LPUSH and consumes with BRPOP, so the next message
-- to be delivered is at the tail; "ahead" counts the messages delivered before it.
-- A job rides its batch's message (task id = the batch id) or one of its own (task id =
-- the job id: a single submission, or a requeue); either needle matches.
-- KEYS[1] = the queue list (kombu names it after the queue)
-- KEYS[2] = kombu's `unacked` hash (delivery tag -> JSON [message, exchange, routing key])
-- KEYS[3] = kombu's `unacked_index` sorted set (delivery tag -> delivery time, epoch seconds)
-- ARGV[1] = a needle: a task id as it appears in the message headers, `"id": "<id>"`
-- ARGV[2] = at most this many queue entries are examined, from the delivery end (0 = none):
--           the script blocks Redis while it runs, so callers keep this small
-- ARGV[3] = at most this many HSCAN pages (200 entries each) of `unacked` are examined
-- ARGV[4] = a second needle, or "" for none
-- Returns: {queue length, messages ahead (-1 = not in the queue), examined,
--           unacked delivery tag or "", unacked since (epoch seconds) or "",
--           the message found (queued, else unacked) as stored, or ""}
local function matches(item)
  if string.find(item, ARGV[1], 1, true) then return true end
  return ARGV[4] ~= '' and string.find(item, ARGV[4], 1, true) ~= nil
end
local len = redis.call('LLEN', KEYS[1])
local limit = tonumber(ARGV[2])
if limit > len then limit = len end
local ahead = -1
local examined = 0
local found = ''
local chunk = 500
-- walk from the tail (next to be delivered) towards the head
local stop = len - 1
while limit > 0 and examined < limit and ahead < 0 do
  local start = math.max(stop - chunk + 1, len - limit)
  local items = redis.call('LRANGE', KEYS[1], start, stop)
  for i = #items, 1, -1 do
    if matches(items[i]) then
      ahead = examined
      found = items[i]
      break
    end
    examined = examined + 1
  end
  stop = start - 1
  if stop < 0 then break end
end
local tag = ''
local since = ''
local cursor = '0'
local pages = 0
local max_pages = tonumber(ARGV[3])
repeat
  pages = pages + 1
  local page = redis.call('HSCAN', KEYS[2], cursor, 'COUNT', 200)
  cursor = page[1]
  local entries = page[2]
  for i = 1, #entries, 2 do
    if tag == '' and matches(entries[i + 1]) then
      tag = entries[i]
      if found == '' then found = entries[i + 1] end
    end
  end
until cursor == '0' or tag ~= '' or pages >= max_pages
if tag ~= '' then
  since = redis.call('ZSCORE', KEYS[3], tag) or ''
end
return {len, ahead, examined, tag, since, found}
