-- bump_stats.lua: add summed increments to one statistics hash.
--
-- KEYS[1]  the hash (one key: one cluster slot)
-- ARGV[1]  seconds the hash is kept after this write (a day's statistics); 0: kept for ever
-- ARGV[2]  "1" to delete the fields an increment leaves at 0 (the journey map's activity hash)
-- ARGV[3…] field, increment, field, increment, …
--
-- One call per hash instead of a command per field: a flush writes tens to thousands of fields
-- into a handful of hashes, and each command costs the server's client far more to send and
-- read back than its field costs here. A field left at 0 is deleted in the same atomic step
-- that left it so, so a count another server adds meanwhile is never lost.

local prune = ARGV[2] == "1"
for i = 3, #ARGV, 2 do
    local count = redis.call("HINCRBY", KEYS[1], ARGV[i], ARGV[i + 1])
    if prune and count == 0 then
        redis.call("HDEL", KEYS[1], ARGV[i])
    end
end
local keep_s = tonumber(ARGV[1])
if keep_s > 0 then
    redis.call("EXPIRE", KEYS[1], keep_s)
end
return 0
