-- take.lua: delete a customer's keys if their state is still at the version the caller read.
--
-- KEYS[1]  the state hash, KEYS[2] the decisions hash (one hash tag: one cluster slot)
-- ARGV[1]  the version the caller read
--
-- Returns 1 when the keys were deleted, 0 when the state had moved on (nothing deleted).
-- Identify takes an anonymous visitor's state this way before merging it into the customer:
-- an event that lands on the visitor after the read makes the take fail, so it is never
-- deleted unmerged; Identify reads again and retries.

local current = redis.call("HGET", KEYS[1], "version") or "0"
if current ~= ARGV[1] then  -- versions are tokens, compared as strings (commit.lua)
    return 0
end
redis.call("DEL", KEYS[1], KEYS[2])
return 1
