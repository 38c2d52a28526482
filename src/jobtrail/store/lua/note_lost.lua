-- Record why a delivery's pool process was lost on its job, while the job is still that
-- delivery's: the next start's `redelivered` event takes it as its reason (transition.lua).
-- KEYS[1] = job:<id> hash
-- ARGV[1] = the delivery's run token; ARGV[2] = the cause in words
-- Returns: {1, <attempts>} when written; {0, <attempts or "">} when the job is missing,
--          not processing, or another delivery's (a stale delivery writes nothing)
local got = redis.call('HMGET', KEYS[1], 'status', 'run', 'attempts')
if got[1] ~= 'processing' or got[2] ~= ARGV[1] then
  return {0, got[3] or ''}
end
redis.call('HSET', KEYS[1], 'lost', ARGV[2])
return {1, got[3] or '0'}
