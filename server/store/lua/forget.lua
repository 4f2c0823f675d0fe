-- forget.lua: read a customer's record and delete every key of theirs, in one step.
--
-- KEYS     every key of the customer, the state hash first (one hash tag: one cluster slot)
-- ARGV[1]  the state hash's record field ("blob")
--
-- Returns {the record (nil when the customer has no state), how many of KEYS existed}.
-- ForgetCustomer takes the customer out of the stage counts at the stage of the state it
-- deleted: read and deleted at once, no event of theirs can move them in between.

local record = redis.call("HGET", KEYS[1], ARGV[1])
local deleted = redis.call("DEL", unpack(KEYS))
return {record, deleted}
