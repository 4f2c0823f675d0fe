-- take.lua: read a customer's record and delete their keys, in one step.
--
-- KEYS[1]  the state hash, KEYS[2] the decisions hash (one hash tag: one cluster slot)
-- ARGV[1]  the state hash's record field ("blob")
--
-- Returns the record (false, deleting nothing, when the customer has no state).
-- Identify takes an anonymous visitor's state this way before merging it into the customer:
-- read and deleted at once, no event of the visitor can land in between, so a visitor busy
-- sending events is taken at the first try; an event that lands after the take starts a new
-- visitor state, which the next Identify merges.

local record = redis.call("HGET", KEYS[1], ARGV[1])
if not record then
    return false
end
redis.call("DEL", KEYS[1], KEYS[2])
return record
