-- One page of a sorted set from a (score, member) position on, for keyset paging (read only).
-- KEYS[1] = the sorted set
-- ARGV[1] = the position's member, ARGV[2] = its score (a float as the client wrote it),
-- ARGV[3] = entries to return
-- Returns: flat {member, score, ...} of up to ARGV[3] entries, by rank, from the rank right
--          after the member when it is still there with that score, else from the first
--          entry whose score is >= the position's (equal scores sort by member, bytewise,
--          which Lua's locale-bound string comparison cannot reproduce: the client drops
--          the entries at or before the position). A rank-offset page would shift as
--          other clients add or remove entries before it; this does not.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local start
if score and tonumber(score) == tonumber(ARGV[2]) then
  start = redis.call('ZRANK', KEYS[1], ARGV[1]) + 1
else
  start = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[2])
end
return redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[3]) - 1, 'WITHSCORES')
