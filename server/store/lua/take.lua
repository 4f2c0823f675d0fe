-- take.lua: read a customer's record and delete their keys, in one step.
--
-- KEYS     the customer's keys to delete, the state hash first (one hash tag: one cluster slot)
-- ARGV[1]  the state hash's record field ("blob")
--
-- Returns {the record (nil when the customer has no state), how many of KEYS existed}.
-- Read and deleted at once, no event of the customer can land in between. Identify takes an
-- anonymous visitor's state this way before merging it into the customer, so a visitor busy
-- sending events is taken at the first try (an event that lands after the take starts a new
-- visitor state, which the next Identify merges). ForgetCustomer deletes every key of the
-- customer this way and takes them out of the stage counts at the stage it deleted.

local record = redis.call("HGET", KEYS[1], ARGV[1])
local deleted = redis.call("DEL", unpack(KEYS))
return {record, deleted}
