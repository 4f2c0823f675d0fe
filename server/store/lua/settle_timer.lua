-- settle_timer.lua: put a claimed customer back at its due time, unless a commit already did.
--
-- KEYS[1]  the customer's due-time shard
-- ARGV[1]  the member
-- ARGV[2]  the claim's lapse, ms: the score the claim gave it
-- ARGV[3]  its due time, ms, as its state says ("": none pending, the member is removed)
--
-- A commit since the claim re-scored the member to the due time of the state it wrote: that
-- one stands. Returns 1 when settled here, 0 when a commit had.
local score = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then
    return 0
end
if ARGV[3] == "" then
    redis.call("ZREM", KEYS[1], ARGV[1])
else
    redis.call("ZADD", KEYS[1], ARGV[3], ARGV[1])
end
return 1
