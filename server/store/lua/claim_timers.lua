-- claim_timers.lua: take the customers whose timer is due from one due-time shard, atomically.
--
-- KEYS[1]  a due-time shard (zset: member -> due time in ms)
-- ARGV[1]  now, ms: members scored at or before it are due
-- ARGV[2]  the claim's lapse, ms: claimed members are re-scored to it, so no other server sees
--          them due until then (a server that dies holding them leaves them to be taken over)
-- ARGV[3]  at most this many members
--
-- Returns a flat list {member, score, member, score, ...}: the claimed members and the score
-- each had (its due time, or the lapse of an earlier claim that was never settled).
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "WITHSCORES", "LIMIT", 0, ARGV[3])
for i = 1, #due, 2 do
    redis.call("ZADD", KEYS[1], ARGV[2], due[i])
end
return due
