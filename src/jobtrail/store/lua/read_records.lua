-- Read job records with their events for a purge batch, as one JSON document (read only).
-- KEYS[2i-1] = job:<id> hash of job i
-- KEYS[2i]   = job:<id>:events stream of job i
-- Returns: a JSON array with one entry per job, in order: 0 when job:<id> does not
--          exist, else {"job": {field: value, ...}, "events": [{"event_id": <stream id>,
--          field: value, ...}, ...]} (an empty events list may come back as {}).
local out = {}
for i = 1, #KEYS, 2 do
  local flat = redis.call('HGETALL', KEYS[i])
  if #flat == 0 then
    out[#out + 1] = 0
  else
    local job = {}
    for j = 1, #flat, 2 do
      job[flat[j]] = flat[j + 1]
    end
    local events = {}
    for _, entry in ipairs(redis.call('XRANGE', KEYS[i + 1], '-', '+')) do
      local event = {event_id = entry[1]}
      local fields = entry[2]
      for j = 1, #fields, 2 do
        event[fields[j]] = fields[j + 1]
      end
      events[#events + 1] = event
    end
    out[#out + 1] = {job = job, events = events}
  end
end
return cjson.encode(out)
