-- scan_batch.lua: one SCAN step with each key's type, expiry and `status` field.
--
-- KEYS: none (the keys come from SCAN; the script only reads).
-- ARGV[1] = SCAN cursor ("0" to start)
-- ARGV[2] = SCAN COUNT hint (keys per step)
-- ARGV[3] = SCAN MATCH pattern ("*" for every key)
-- ARGV[4] = hash field read as the job status ("status")
-- ARGV[5] = "1" when the server has PEXPIRETIME (Redis >= 7.0), else "0"
--
-- Returns {next_cursor, now_ms, keys_json, meta}:
--   now_ms     the server's TIME, epoch milliseconds (string);
--   keys_json  a JSON array of the step's key names;
--   meta       one line per key, in the same order: "<type>,<expire_at_ms>,<status>"
--              where expire_at_ms is the absolute expiry in epoch ms (-1: no TTL)
--              and status is "=" followed by the field's value (newlines as "\n"),
--              or empty when the key is not a hash or has no such field.
-- The absolute expiry lets two snapshots tell a TTL reset from the countdown.
-- Hashes are probed with HGET first and only other types pay for TYPE (the
-- common case, job records, costs one call less). PTTL and TYPE do not touch
-- the key's LRU clock; HGET does.
local scan
if ARGV[3] == '*' then
    scan = redis.call('SCAN', ARGV[1], 'COUNT', ARGV[2])
else
    scan = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[3], 'COUNT', ARGV[2])
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exact = ARGV[5] == '1'
local field = ARGV[4]
local keys = scan[2]
local meta = {}
for i, key in ipairs(keys) do
    local ktype, status = 'hash', ''
    local v = redis.pcall('HGET', key, field)
    if type(v) == 'table' then
        ktype = redis.call('TYPE', key)['ok']
    elseif v then
        if string.find(v, '\n', 1, true) then v = string.gsub(v, '\n', '\\n') end
        status = '=' .. v
    end
    local expire_at
    if exact then
        expire_at = redis.call('PEXPIRETIME', key)
    else
        expire_at = redis.call('PTTL', key)
        if expire_at >= 0 then expire_at = now_ms + expire_at end
    end
    if expire_at < 0 then  -- no number formatting (the costly part) for keys without TTL
        meta[i] = ktype .. ',-1,' .. status
    else
        meta[i] = ktype .. ',' .. expire_at .. ',' .. status
    end
end
local keys_json = '[]'
if #keys > 0 then keys_json = cjson.encode(keys) end
return {scan[1], string.format('%d', now_ms), keys_json, table.concat(meta, '\n')}
