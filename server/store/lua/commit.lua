-- commit.lua: compare the state version and write the new state, atomically.
--
-- KEYS[1]  the customer's state hash      (fields: blob, version)
-- KEYS[2]  the customer's decisions hash, written by journeyman before the decision ring moved
--          into the state's blob (`server/store/record.py`): deleted on the first write here.
--          Both keys share one hash tag, so this runs on one cluster slot.
-- ARGV[1]  expected version: the version the caller loaded ("0" for a customer with no state)
-- ARGV[2]  the new version: a token the caller drew at random, never "0". Versions are compared
--          as strings, never counted: a key deleted and written again, or a Redis restarted
--          from an AOF that lost its last writes, never shows an old version with other
--          content, so a caller's cached (state, version) is either current or refused here.
-- ARGV[3]  new blob (bytes): the state after this commit's events and the decisions kept for
--          the customer's last events; the caller found none of its events among those it
--          loaded at the expected version, so a version that still matches means no repeat
-- ARGV[4]  TTL in seconds, set on the state hash on each write
-- KEYS[3]  the customer's stream of captured events (optional; same hash tag)
-- ARGV[5]  m, the events to capture (0: capture is off), then the oldest stream id to
--          keep (ms; older entries are trimmed, MINID ~) and the stream's TTL in seconds, then
--          m event lines (JSON, the export's format), appended as field `e` in order.
-- KEYS[4]  the due-time shard of the customer (optional), KEYS[5] the outbox stream (optional)
-- ARGV[t]  after the capture arguments (t = 6, plus 2 + m when m > 0): the customer's
--          member in the due-time index ("" leaves the index alone), then its next due time in
--          ms ("" removes it: no timer pending), then k, the outbox entries, then the outbox's
--          approximate length cap, then k pairs (kind, entry bytes), appended in order.
--          These keys are not in the customer's hash tag: a single Redis only (README, Timers).
--
-- Returns {outcome, version, blob}:
--   {"CONFLICT",  current version, current blob}      version moved since the load; nothing
--                                                    written (the blob, false if none, spares
--                                                    the caller a load before its retry)
--   {"COMMITTED", new version}                        state and new version written
--
-- Redis runs a script to completion before any other command, so check-then-write is atomic
-- without WATCH/MULTI. The script touches only KEYS and is deterministic, so it replicates safely.

local state_key = KEYS[1]
local expected_version, new_version = ARGV[1], ARGV[2]
local ttl_s = tonumber(ARGV[4])

local current_version = redis.call("HGET", state_key, "version") or "0"
if current_version ~= expected_version then
    return {"CONFLICT", current_version, redis.call("HGET", state_key, "blob")}
end

redis.call("HSET", state_key, "blob", ARGV[3], "version", new_version)
redis.call("EXPIRE", state_key, ttl_s)
redis.call("DEL", KEYS[2])

-- Capture: only events that were committed reach here (not repeats, not conflicts).
local capture_at = 5
local captured = tonumber(ARGV[capture_at] or "0")
if captured > 0 then
    local oldest_id, capture_ttl_s = ARGV[capture_at + 1], tonumber(ARGV[capture_at + 2])
    for i = 1, captured do
        redis.call("XADD", KEYS[3], "MINID", "~", oldest_id, "*", "e", ARGV[capture_at + 2 + i])
    end
    redis.call("EXPIRE", KEYS[3], capture_ttl_s)
end

-- Timers: the next due time replaces whatever the index held (a claim included), and the
-- outbox gets this commit's entries, in the same atomic step as the state they come from.
local timers_at = capture_at + 1 + (captured > 0 and (2 + captured) or 0)
local member = ARGV[timers_at]
if member and member ~= "" then
    local due = ARGV[timers_at + 1]
    if due == "" then
        redis.call("ZREM", KEYS[4], member)
    else
        redis.call("ZADD", KEYS[4], due, member)
    end
end
local published = tonumber(ARGV[timers_at + 2] or "0")
for i = 1, published do
    local at = timers_at + 2 + 2 * i
    redis.call("XADD", KEYS[5], "MAXLEN", "~", ARGV[timers_at + 3], "*",
        "k", ARGV[at], "d", ARGV[at + 1])
end

return {"COMMITTED", new_version}
