-- prune.lua: delete the fields of a statistics hash that stand at 0.
--
-- KEYS[1]  the hash (one key: one cluster slot)
-- ARGV     the fields that an increment left at 0
--
-- Returns how many were deleted. A field incremented again since (by another server) is kept:
-- the check and the delete are one atomic step, so no count is lost. The activity hash of the
-- journey map holds a field per stage and hour of last event; most drop to 0 when their
-- customers act again, and without this they would pile up for ever.

local deleted = 0
for _, field in ipairs(ARGV) do
    if redis.call("HGET", KEYS[1], field) == "0" then
        deleted = deleted + redis.call("HDEL", KEYS[1], field)
    end
end
return deleted
