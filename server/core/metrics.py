"""Prometheus metrics: what an SRE watches, on the HTTP port (`server.runtime.http_port`).

Histograms have sub-millisecond buckets because a decision takes about a millisecond. With several
worker processes, set PROMETHEUS_MULTIPROC_DIR and prometheus_client aggregates them.
"""

from __future__ import annotations

import time

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics

from server.core.metric_batches import FlushFirst, MetricBatches

# A `_created` series beside every counter doubles the page and tells an SRE nothing that the
# process start time does not.
disable_created_metrics()  # type: ignore[no-untyped-call]

# The hot path's touches of the metrics below, added in batches (`server.core.metric_batches`);
# registered ahead of them, so that the registry flushes the batches before it reads them.
BATCHES = MetricBatches()
REGISTRY.register(FlushFirst(BATCHES))

# 50 µs to 2.5 s: sub-millisecond resolution where decisions live, and the tail of a slow Redis.
LATENCY_BUCKETS_S = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip

DECISIONS = Counter(
    "journeyman_decisions",
    "Decisions made, by journey, the stage they left the customer in, and outcome "
    "(stored, degraded, duplicate).",
    ["journey", "stage", "outcome"],
)
CALL_SECONDS = Histogram(
    "journeyman_call_seconds", "Whole gRPC calls, by method and status code.", ["method", "code"],
    buckets=LATENCY_BUCKETS_S,
)  # fmt: skip
REDIS_SECONDS = Histogram(
    "journeyman_redis_seconds", "Redis round trips, by operation (load, commit).", ["operation"],
    buckets=LATENCY_BUCKETS_S,
)  # fmt: skip
KERNEL_SECONDS = Histogram(
    "journeyman_decide_seconds",
    "The engine's decision per event: engine.decide() (kernels and their wrapper), or an "
    "event's share of a round's batched kernel call with its own answer.",
    buckets=LATENCY_BUCKETS_S,
)  # fmt: skip
ROUND_EVENTS = Histogram(
    "journeyman_round_events",
    "Events decided together in one decision round (one Redis round trip to load, one to "
    "commit): 1 for a call alone, more for concurrent calls and stream messages gathered "
    "together and for DecideBatch calls.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
REDIS_PIPELINES = Counter(
    "journeyman_redis_pipelines",
    "Round trips that carried concurrent calls' loads and commits together.",
)
REDIS_COMMANDS = Counter(
    "journeyman_redis_commands", "Commands sent in those round trips (÷ pipelines: batch size)."
)
DEGRADED = Counter(
    "journeyman_degraded_answers",
    "Answers from the rules alone, nothing stored, by reason: redis_unavailable (Redis refused,"
    " timed out or is down), breaker_open (Redis failed repeatedly; not tried for a moment),"
    " redis_refused (credentials or ACL).",
    ["reason"],
)
NOT_STORED = Counter(
    "journeyman_not_stored_answers",
    "Events answered without being stored although Redis was healthy, by reason: busy (the"
    " server could not reach them before the caller's deadline; RESOURCE_EXHAUSTED).",
    ["reason"],
)
REDIS_UP = Gauge(
    "journeyman_redis_up", "1 while Redis answers (the last round trip or health probe worked).",
    multiprocess_mode="liveall",
)  # fmt: skip
BREAKER_OPEN = Gauge(
    "journeyman_redis_breaker_open",
    "1 while the circuit breaker in front of Redis is open (answers degraded without trying).",
    multiprocess_mode="liveall",
)
CONFLICTS = Counter("journeyman_cas_conflicts", "Commits refused because the state had changed.")
STATE_CACHE_LOOKUPS = Counter(
    "journeyman_state_cache_lookups",
    "Customers looked up in the state cache before a decision, by result (hit: no load).",
    ["result"],
)
STATE_CACHE_TRUSTED = Gauge(
    "journeyman_state_cache_trusted",
    "1 while the state cache is read instead of Redis; 0 while its entries are too often stale"
    " (a customer's events reach several processes in turn) and every customer is loaded.",
    multiprocess_mode="liveall",
)  # fmt: skip
STATES_UNREADABLE = Counter(
    "journeyman_states_unreadable",
    "Stored customer states that could not be read, by reason (layout_missing: written under a"
    " layout the layouts registry no longer holds; damaged: not a state): each customer starts"
    " afresh and their next event writes over the old state. Restore the layouts hash from a"
    " backup of Redis before more are written over.",
    ["reason"],
)  # fmt: skip
SHED = Counter("journeyman_shed_calls", "Calls refused with RESOURCE_EXHAUSTED (overload).")
SPUN = Counter(
    "journeyman_event_loop_spin_seconds",
    "Seconds the event loop kept turning after a lone call instead of sleeping"
    " (JOURNEYMAN_SPIN_US): CPU spent to keep the next call's latency down.",
)
RELOADS = Counter("journeyman_rules_reloads", "Rules reloads attempted.")
RELOAD_FAILURES = Counter("journeyman_rules_reload_failures", "Rules reloads refused (bad files).")
RULESET = Gauge(
    "journeyman_ruleset_info", "The ruleset in force (value 1), by version.", ["version"],
    multiprocess_mode="liveall",
)  # fmt: skip


class timed:  # lower case: used as a function, like contextlib's
    """Observe the seconds the block takes (perf_counter: monotonic, sub-µs resolution). A
    class rather than a generator: it times every Redis round trip of a decision, and
    contextlib's machinery was four more Python calls each."""

    __slots__ = ("_histogram", "_start")

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exception: object) -> None:
        BATCHES.observe(self._histogram, time.perf_counter() - self._start)


def set_ruleset(version: str, previous: str | None = None) -> None:
    if previous is not None:
        try:
            RULESET.remove(previous)
        except KeyError:  # never set in this process
            pass
    RULESET.labels(version=version).set(1)


EMBEDDED_REDIS_DEATHS = Counter(
    "journeyman_embedded_redis_deaths",
    "Times the embedded redis-server ended without being asked to (it is then restarted).",
)
EMBEDDED_REDIS_RESTARTS = Counter(
    "journeyman_embedded_redis_restarts",
    "Restarts of the embedded redis-server from its AOF, by outcome (started, failed).",
    ["outcome"],
)
