-- Read job records with their events for a purge batch (read only).
-- KEYS[2i-1] = job:<id> hash of job i
-- KEYS[2i]   = job:<id>:events stream of job i
-- Returns: one JSON document (a single bulk reply: a nested multi-bulk reply of a
--          batch goes out in thousands of small writes): an array with one entry
--          per job, in order: 0 when job:<id> does not exist, else
--          [HGETALL reply (flat field, value list), XRANGE reply (list of
--          [stream id, flat field, value list])]. The replies are encoded as they
--          came, without building tables in Lua (an empty list may come back as {}).
local out = {}
for i = 1, #KEYS, 2 do
  local flat = redis.call('HGETALL', KEYS[i])
  if #flat == 0 then
    out[#out + 1] = 0
  else
    out[#out + 1] = {flat, redis.call('XRANGE', KEYS[i + 1], '-', '+')}
  end
end
return cjson.encode(out)
