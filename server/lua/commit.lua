-- commit.lua: compare the state version, dedupe the event id, write the new state, atomically.
--
-- KEYS[1]  the customer's state hash      (fields: blob, version)
-- KEYS[2]  the customer's decisions hash  (fields: e:<event_id> -> decision,
--                                          r:<slot> -> event_id in that ring slot,
--                                          n -> decisions written so far)
--          Both keys share one hash tag, so this runs on one cluster slot.
-- ARGV[1]  expected version: the version the caller loaded (0 for a customer with no state)
-- ARGV[2]  new state blob (bytes)
-- ARGV[3]  "1" when an event id is given, "0" when not (an empty event id is still an id)
-- ARGV[4]  event id (ignored when ARGV[3] is "0")
-- ARGV[5]  decision bytes to keep for that event id (ignored when ARGV[3] is "0")
-- ARGV[6]  decisions kept: the ring size, >= 1; the oldest decision beyond it is evicted
-- ARGV[7]  TTL in seconds, set on every key of the customer on each write
--
-- Returns {outcome, version, decision}:
--   {"DUPLICATE", current version, stored decision}  the event id was seen; nothing written
--   {"CONFLICT",  current version}                    version moved since the load; nothing written
--   {"COMMITTED", new version}                        state, version+1 and decision written
--
-- Redis runs a script to completion before any other command, so check-then-write is atomic
-- without WATCH/MULTI. The script touches only KEYS and is deterministic, so it replicates safely.

local state_key, decisions_key = KEYS[1], KEYS[2]
local expected_version = tonumber(ARGV[1])
local has_event = ARGV[3] == "1"
local event_id = ARGV[4]
local kept = tonumber(ARGV[6])
local ttl_s = tonumber(ARGV[7])

local current_version = tonumber(redis.call("HGET", state_key, "version") or "0")

if has_event then
    local stored = redis.call("HGET", decisions_key, "e:" .. event_id)
    if stored then
        return {"DUPLICATE", current_version, stored}
    end
end

if current_version ~= expected_version then
    return {"CONFLICT", current_version}
end

local new_version = current_version + 1
redis.call("HSET", state_key, "blob", ARGV[2], "version", new_version)
redis.call("EXPIRE", state_key, ttl_s)

if has_event then
    -- A ring of `kept` slots in the same hash: slot i remembers which event id to evict when the
    -- ring comes round, so the hash never holds more than `kept` decisions.
    local written = redis.call("HINCRBY", decisions_key, "n", 1)
    local slot_field = "r:" .. ((written - 1) % kept)
    local evicted = redis.call("HGET", decisions_key, slot_field)
    if evicted then
        redis.call("HDEL", decisions_key, "e:" .. evicted)
    end
    redis.call("HSET", decisions_key, slot_field, event_id, "e:" .. event_id, ARGV[5])
end
-- Refresh even without a new decision: the decisions must live as long as the state they explain.
redis.call("EXPIRE", decisions_key, ttl_s)

return {"COMMITTED", new_version}
