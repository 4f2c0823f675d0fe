"""Every Redis key journeyman uses, and the hash fields inside them.

Nothing else builds a key. Layout under the prefix (default ``jm:``)::

    jm:{c:<customer_id>}:state        hash  blob -> the state and the decisions kept for the
                                            last events (`server/store/record.py`),
                                            version -> a random token
    jm:{c:<customer_id>}:decisions    hash  written by journeyman before 2026-12-06 only (the
                                            decisions kept, beside the state); deleted by the
                                            customer's next commit
    jm:{c:<customer_id>}:events       stream  the customer's captured events (capture on)
    jm:{a:<anonymous_id>}:state       the same keys for an anonymous visitor
    jm:{a:<anonymous_id>}:decisions
    jm:stats:stages:<journey>         hash  stage -> customers in it now
    jm:stats:transitions:<journey>:<YYYY-MM-DD>   hash  transition -> count that UTC day
    jm:stats:outcomes:<journey>:<YYYY-MM-DD>      hash  the exposures of that UTC day, by the
                                                        stage the customer was in, and their
                                                        conversions since:
        x|<action>|<stage>|<arm>          customers newly exposed (arm: t treated, c control,
                                          t.<variant> treated with that variant)
        c|<action>|<goal>|<stage>|<arm>   of those, customers who converted for the goal
        v|<action>|<goal>|<stage>|<arm>   the goal's summed value, in thousandths (exact HINCRBY)
    jm:stats:journey:<journey>:<YYYY-MM-DD>       hash  the moves and friction of that UTC day:
        t|<transition>|<from stage>       customers who took the transition from that stage
        e|<stage>                         customers who entered the stage (new ones included)
        o|<stage>                         customers who left it without a transition (forgotten,
                                          merged into another customer)
        d|<stage>|<bucket>                customers who left it by a transition after a time in it
                                          within `stage_time_bucket` <bucket>
        l|<stage>|<level>                 events decided at that friction level, by their stage
        s|<stage>|<signal>|<touchpoint>   friction signals fired, by stage and touchpoint
    jm:stats:activity:<journey>       hash  <stage>|<hour> -> customers in the stage whose last
                                            event was in that hour (ms // 3,600,000): stalls
    jm:timers:due:<shard>             zset  c:<customer_id> (a:<id>) -> next due time, ms; a
                                            claimed one -> when its claim lapses
    jm:outbox                         stream  d -> OutboxEntry bytes, k -> timer | event
    jm:layouts                        hash  <digest, hex> -> a journey's state layout, as
                                            `engine.codec.StateLayout.description`
                                            (`server/store/layouts.py`)

A customer's keys share the hash tag ``{c:<id>}``, so Redis Cluster puts them in one slot and the
commit script may touch them all atomically. Stats keys carry no tag: they are global counters,
spread over the cluster, and never written by a script.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_PREFIX = "jm:"
CUSTOMER_ID_MAX_CHARS = 128
# Braces would open a second hash tag, whitespace and control characters would make keys ambiguous
# in logs and redis-cli; this alphabet covers UUIDs, e-mail addresses and namespaced ids (crm:42).
_CUSTOMER_ID = re.compile(r"[A-Za-z0-9._@:+-]+")
_CUSTOMER_ID_ALPHABET = "ASCII letters, digits and . _ @ : + -"
# The journey names of the rules language, so a stats key never holds a brace or a space.
_JOURNEY = re.compile(r"[a-z][a-z0-9_]*")
# A UTC day as YYYY-MM-DD or YYYYMMDD; keys always spell it YYYY-MM-DD.
_DAY = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")
# The hash tag's letter: whose journey a key holds.
CUSTOMER_TAG = "c"
ANONYMOUS_TAG = "a"

# Fields of the state hash.
STATE_BLOB_FIELD = "blob"
STATE_VERSION_FIELD = "version"
# Fields of the outcomes hash (see above); `|` never occurs in a rules-language name.
VALUE_SCALE = 1_000


def _arm(treated: bool, variant: str) -> str:
    if not treated:
        return "c"
    return f"t.{variant}" if variant else "t"


def exposure_field(action: str, stage: str, *, treated: bool, variant: str = "") -> str:
    return f"x|{action}|{stage}|{_arm(treated, variant)}"


def conversion_field(
    action: str, goal: str, stage: str, *, treated: bool, variant: str = ""
) -> str:
    return f"c|{action}|{goal}|{stage}|{_arm(treated, variant)}"


def value_field(action: str, goal: str, stage: str, *, treated: bool, variant: str = "") -> str:
    return f"v|{action}|{goal}|{stage}|{_arm(treated, variant)}"


@dataclass(frozen=True, slots=True)
class OutcomeField:
    """A field of the outcomes hash, read back: `kind` is x, c or v; `goal` is "" for x."""

    kind: str
    action: str
    goal: str
    stage: str
    treated: bool
    variant: str = ""


def _read_arm(arm: str) -> tuple[bool, str] | None:
    if arm in ("t", "c"):
        return arm == "t", ""
    if arm.startswith("t.") and len(arm) > 2:
        return True, arm[2:]
    return None


def outcome_field(field: str) -> OutcomeField | None:
    """The parts of an outcomes-hash field; None for a field this version does not write."""
    parts = field.split("|")
    arm = _read_arm(parts[-1])
    if arm is None:
        return None
    if len(parts) == 4 and parts[0] == "x":
        return OutcomeField("x", parts[1], "", parts[2], *arm)
    if len(parts) == 5 and parts[0] in ("c", "v"):
        return OutcomeField(parts[0], parts[1], parts[2], parts[3], *arm)
    return None


# Time in a stage, recorded when a customer leaves it, in buckets a quarter of an octave wide:
# bucket b holds durations up to STAGE_TIME_BOUNDS_MS[b] = ceil(1000 * 2 ** (b / 4)) ms (bucket 0:
# up to a second), so a median read from them is at most 19 % above the true one.
STAGE_TIME_BOUNDS_MS = tuple(math.ceil(1000 * 2 ** (b / 4)) for b in range(128))
ACTIVITY_HOUR_MS = 3_600_000


def stage_time_bucket(duration_ms: int) -> int:
    """The bucket of a time in stage: the first whose bound is at least `duration_ms`."""
    return min(bisect.bisect_left(STAGE_TIME_BOUNDS_MS, duration_ms), len(STAGE_TIME_BOUNDS_MS) - 1)


def move_field(transition: str, from_stage: str) -> str:
    return f"t|{transition}|{from_stage}"


def entry_field(stage: str) -> str:
    return f"e|{stage}"


def departure_field(stage: str) -> str:
    return f"o|{stage}"


def stage_time_field(stage: str, bucket: int) -> str:
    return f"d|{stage}|{bucket}"


def friction_level_field(stage: str, level: str) -> str:
    return f"l|{stage}|{level}"


def signal_field(stage: str, signal: str, touchpoint: str) -> str:
    return f"s|{stage}|{signal}|{touchpoint}"


def activity_field(stage: str, at_ms: int) -> str:
    """The activity-hash field of a customer in `stage` whose last event was at `at_ms`."""
    return f"{stage}|{at_ms // ACTIVITY_HOUR_MS}"


def validate_customer_id(value: str) -> str | None:
    """Return why `value` cannot be a customer (or anonymous visitor) id, or None when it can."""
    if not value:
        return "the id is empty; send the customer's id, 1 to 128 characters"
    if len(value) > CUSTOMER_ID_MAX_CHARS:
        return (
            f"the id is {len(value)} characters long; the limit is {CUSTOMER_ID_MAX_CHARS}"
            " (send a shorter, stable id, or a hash of the long one)"
        )
    if _CUSTOMER_ID.fullmatch(value) is None:
        bad = next(char for char in value if _CUSTOMER_ID.fullmatch(char) is None)
        return f"the id contains {bad!r}; use only {_CUSTOMER_ID_ALPHABET}"
    return None


def timer_member(customer_id: str, *, anonymous: bool = False) -> str:
    """A customer's member in the due-time index: `c:<id>`, or `a:<id>` for a visitor."""
    return f"{ANONYMOUS_TAG if anonymous else CUSTOMER_TAG}:{customer_id}"


def member_customer(member: str) -> tuple[str, bool]:
    """(customer id, anonymous) of a `timer_member`."""
    letter, _, customer_id = member.partition(":")
    return customer_id, letter == ANONYMOUS_TAG


def due_shard(member: str, shards: int) -> int:
    """The due-time shard a customer's member lives in: stable across processes (crc32)."""
    return zlib.crc32(member.encode()) % shards


def utc_day(now_ms: int) -> str:
    """The UTC calendar day (``YYYY-MM-DD``) of `now_ms`, milliseconds since the Unix epoch."""
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class CustomerKeys:
    """The keys of one customer, all in the same hash tag (one cluster slot)."""

    state: str
    decisions: str  # written by journeyman before 2026-12-06 only: deleted by the next commit
    captured: str = ""  # the stream of captured events (`JOURNEYMAN_CAPTURE_DAYS`)

    def all(self) -> tuple[str, ...]:
        """Every key the customer owns, in the order the commit script receives them as KEYS."""
        return (self.state, self.decisions)


# Every stored decision counts into its day's statistics: a regular expression and a format each.
@functools.lru_cache(maxsize=256)
def _per_day_key(prefix: str, kind: str, journey: str, day: str) -> str:
    match = _DAY.fullmatch(day)
    if match is None:
        raise ValueError(
            f"day {day!r} is not YYYY-MM-DD or YYYYMMDD; build it with keys.utc_day(now_ms)"
        )
    return f"{prefix}stats:{kind}:{_checked_journey(journey)}:{'-'.join(match.groups())}"


# A decision asks for its customer's keys three or four times (load, commit, the state cache):
# building them checks the id with a regular expression and formats three strings.
@functools.lru_cache(maxsize=4096)
def _customer_keys(prefix: str, customer_id: str, anonymous: bool) -> CustomerKeys:
    problem = validate_customer_id(customer_id)
    if problem is not None:
        raise ValueError(f"customer id {customer_id[:140]!r}: {problem}")
    letter = ANONYMOUS_TAG if anonymous else CUSTOMER_TAG
    tag = f"{prefix}{{{letter}:{customer_id}}}"
    return CustomerKeys(
        state=f"{tag}:state", decisions=f"{tag}:decisions", captured=f"{tag}:events"
    )


@dataclass(frozen=True, slots=True)
class Keyspace:
    """Builds keys under one prefix; the prefix separates deployments (or tests) sharing a Redis."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix or any(c.isspace() for c in self.prefix):
            raise ValueError(
                f"key prefix {self.prefix!r} contains a brace or whitespace; a brace would become"
                " the cluster hash tag of every key. Use letters, digits and ':' (e.g. 'jm:')"
            )

    def customer(self, customer_id: str, *, anonymous: bool = False) -> CustomerKeys:
        """The keys of a customer, or of an anonymous visitor (a separate key space).

        Raises ValueError for an id `validate_customer_id` rejects.
        """
        return _customer_keys(self.prefix, customer_id, anonymous)

    def due(self, shard: int) -> str:
        """Sorted set of customers (`timer_member`) by their next due time, ms (one shard)."""
        return f"{self.prefix}timers:due:{shard}"

    def outbox(self) -> str:
        """The outbox stream: decisions made by timers (and stage changes, when published)."""
        return f"{self.prefix}outbox"

    def layouts(self) -> str:
        """The registry of the state layouts customer states were written under."""
        return f"{self.prefix}layouts"

    def captured_pattern(self) -> str:
        """SCAN pattern of every customer's stream of captured events (visitors' too)."""
        return f"{self.prefix}{{*}}:events"

    def stage_counts(self, journey: str) -> str:
        """Hash of stage -> number of customers currently in it, for `journey`."""
        return f"{self.prefix}stats:stages:{_checked_journey(journey)}"

    def transitions(self, journey: str, day: str) -> str:
        """Hash of transition -> times taken on UTC `day`, for `journey`.

        `day` is ``YYYY-MM-DD`` or ``YYYYMMDD``; the key always spells it ``YYYY-MM-DD``, so
        both spellings count into the same hash.
        """
        return self._per_day("transitions", journey, day)

    def outcomes(self, journey: str, day: str) -> str:
        """Hash of exposures and conversions on UTC `day` (fields: `exposure_field`, ...)."""
        return self._per_day("outcomes", journey, day)

    def journey_day(self, journey: str, day: str) -> str:
        """Hash of the moves and friction of UTC `day` (fields: `move_field`, ...)."""
        return self._per_day("journey", journey, day)

    def activity(self, journey: str) -> str:
        """Hash of customers per stage and hour of their last event (`activity_field`)."""
        return f"{self.prefix}stats:activity:{_checked_journey(journey)}"

    def is_activity(self, key: str) -> bool:
        """Whether `key` is a journey's activity hash (its fields at 0 are deleted)."""
        return key.startswith(f"{self.prefix}stats:activity:")

    def _per_day(self, kind: str, journey: str, day: str) -> str:
        return _per_day_key(self.prefix, kind, journey, day)

    def is_per_day(self, key: str) -> bool:
        """Whether `key` holds one day's statistics (and so expires after the retention)."""
        kinds = ("transitions", "outcomes", "journey")
        return key.startswith(tuple(f"{self.prefix}stats:{kind}:" for kind in kinds))


def _checked_journey(journey: str) -> str:
    if _JOURNEY.fullmatch(journey) is None:
        raise ValueError(
            f"journey name {journey!r} is not a rules-language name"
            " (lower-case letters, digits and '_', starting with a letter)"
        )
    return journey
