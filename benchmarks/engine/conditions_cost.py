"""What time conditions and the contact policy cost (issue 17): `decide()` µs per event on the
trial journey with and without each of them, all measured in one run, in-process, no Redis.

The variants are written from `rules/trial.yaml`'s text:

- **base**: its `since:` and `until:` conditions compared instead as a plain number trait
  (`trait: seats`, the duration written as a bare number: `lte: 7d` → `lte: 7`), so the same
  condition nodes and comparisons are evaluated, with no time to keep and no date to read; and its
  `contact_policy:` taken out.
- **since**, **until**, **contact**: the base with one of them as the file writes it: the
  `since: signup` condition of `fast_start_call`, the two `until: trial_ends_at` conditions of
  `trial_last_call`, the contact policy.
- **all**: the file as it is.

Every variant replays the same simulated trial users (`trial_users`: sign-up, logins and
features used over three weeks, a few subscribing; a `trial_ends_at` date trait as ISO text, 14
days after sign-up) from fresh states. One warm-up replay each, then `rounds` rounds of one timed
replay per variant, the variants' order rotated every round, so that a busy moment of a shared
machine weighs on each alike, the collector paused throughout; the fastest replay's µs per event
of each (the least disturbed by other work, as `timeit` advises), its ratio to the base's, and
the median. Also the msgpack state (`engine.codec.encode_state`) of each customer after the
warm-up replay, `trait_features` alone (where `until:` dates are parsed, once per change of
the traits), and `decide_many()` events per second on the same events for the base and all three.

    python -m benchmarks.engine.conditions_cost [--quick] [--json] [--into-results]

`--into-results` (what `make bench` runs, after the timers) puts the figures, or the error, into
benchmarks/results/results.json as the run `conditions` beside the others, and renders RESULTS.md
from that file (section 13).
"""

from __future__ import annotations

import itertools
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from benchmarks import ROOT, added_run
from benchmarks.added_run import AddedRun
from benchmarks.engine.timing import gc_paused
from benchmarks.engine.workload import Traits, Workload
from benchmarks.journey_text import without_block
from benchmarks.report.machine import load_average
from benchmarks.report.run_figures import ConditionsCostFigures, ConditionsVariant
from benchmarks.traffic import TimedEvent
from engine.codec import encode_state
from engine.compile import compile_ruleset
from engine.decide import decide, trait_features
from engine.event import Event
from engine.many import decide_many, encode_events
from engine.rules.load import parse_journeys

if TYPE_CHECKING:
    from benchmarks.report.sections import Runs
    from benchmarks.report.table import Section
    from engine.event import PropertyValue
    from engine.state import CustomerState

TRIAL = ROOT / "rules" / "trial.yaml"
RUN_NAME = "conditions"
VARIANTS = ("base", "since", "until", "contact", "all")
PLAIN_TRAIT = "seats"  # the number trait the base compares where the file reads a time
DAY_MS = 86_400_000
TRIAL_DAYS = 14
START_MS = 1_767_603_600_000  # 2026-01-05 09:00 UTC: sign-ups start, over a week


@dataclass(frozen=True)
class Plan:
    """The sizes of one run (`QUICK`: a check that it works, not figures to quote)."""

    customers: int = 100  # about 20 events each over their three weeks
    rounds: int = 10  # timed replays of each variant, interleaved
    many_repeats: int = 5  # timed decide_many() runs of the base and of all three, interleaved


QUICK = Plan(customers=50, rounds=2, many_repeats=1)


# --- the variants --------------------------------------------------------------------------------

_TIME_SUBJECT = re.compile(r"^(?P<lead>\s*(?:- )?)(?P<key>since|until): \S+")
_DURATION = re.compile(r"^(?P<lead>\s*(?:gt|gte|lt|lte): )(?P<number>\d+)[smhdw]\b")


def plain_time_conditions(text: str, subject: str) -> str:
    """`text`, a journey file, with each `<subject>:` condition (`since` or `until`) compared as
    the trait `PLAIN_TRAIT` instead, its duration written as a bare number (`lte: 7d` → `lte:
    7`); the comparison must be the line after it. ValueError when there is none."""
    lines = text.splitlines(keepends=True)
    found = 0
    for number, line in enumerate(lines):
        subject_line = _TIME_SUBJECT.match(line)
        if subject_line is None or subject_line["key"] != subject:
            continue
        after = lines[number + 1] if number + 1 < len(lines) else ""
        if _DURATION.match(after) is None:
            raise ValueError(
                f"line {number + 2}: a `{subject}:` condition is not followed by its comparison "
                f"with a duration (`lte: 7d`): {after.strip()!r}"
            )
        lines[number] = f"{subject_line['lead']}trait: {PLAIN_TRAIT}\n"
        lines[number + 1] = _DURATION.sub(r"\g<lead>\g<number>", after, count=1)
        found += 1
    if not found:
        raise ValueError(f"the journey has no `{subject}:` condition to replace")
    return "".join(lines)


def variant_texts(text: str) -> dict[str, str]:
    """The journey file `text` as each variant (module docstring), by name."""
    no_since, no_until = (plain_time_conditions(text, s) for s in ("since", "until"))
    no_time = plain_time_conditions(no_since, "until")
    return {
        "base": without_block(no_time, "contact_policy"),
        "since": without_block(no_until, "contact_policy"),
        "until": without_block(no_since, "contact_policy"),
        "contact": no_time,
        "all": text,
    }


# --- the trial users -----------------------------------------------------------------------------


def _trial_traits(rng: random.Random, ends_ms: int) -> dict[str, PropertyValue]:
    """Traits an `Identify` call at sign-up would have set; the trial's end as ISO text."""
    ends = datetime.fromtimestamp(ends_ms / 1000, UTC).isoformat(timespec="seconds")
    return {
        "trial_ends_at": ends.replace("+00:00", "Z"),
        "plan": rng.choice(("solo", "team", "business")),
        PLAIN_TRAIT: float(rng.choice((1, 1, 2, 3, 5, 8, 12, 20, 40))),
        "email_opt_in": rng.random() < 0.8,
        "country": rng.choice(("de", "fr", "us", "gb", "in")),
    }


def _session_starts(rng: random.Random, signup_ms: int) -> Iterator[int]:
    """When a trial user comes back: a first use soon or days later, then on some days, until
    they go quiet (some never do within three weeks)."""
    if rng.random() < 0.5:
        first_ms = signup_ms + int(rng.expovariate(1 / 1_800_000))  # within the hour, mostly
    else:
        first_ms = signup_ms + int(rng.expovariate(1 / (4 * DAY_MS)))  # some after a week
    yield first_ms
    engagement, quiet_day = rng.uniform(0.2, 0.9), rng.expovariate(1 / 12)
    for day in range(1 + (first_ms - signup_ms) // DAY_MS, 3 * 7):
        if day > quiet_day:
            return
        if rng.random() < engagement:
            yield signup_ms + day * DAY_MS + rng.randrange(12 * 3_600_000)


def _trial_events(rng: random.Random, customer: str, signup_ms: int) -> Iterator[TimedEvent]:
    """One trial user's events: sign-up, then sessions of a login and a few features used; one
    in five means to subscribe, in the second week or just after the trial, if still coming."""
    channel = rng.choice(("web", "web", "app"))
    subscribe_ms = signup_ms + int(rng.uniform(8, 16) * DAY_MS) if rng.random() < 0.2 else None
    counter = itertools.count()

    def event(kind: str, at_ms: int, **properties: PropertyValue) -> TimedEvent:
        return TimedEvent(Event(f"{customer}-{next(counter)}", customer, kind, channel,
                                "app" if channel == "app" else "dashboard", properties),
                          at_ms)  # fmt: skip

    yield event("signup", signup_ms)
    for start_ms in _session_starts(rng, signup_ms):
        if subscribe_ms is not None and start_ms > subscribe_ms:
            yield event("subscribe", subscribe_ms, plan="team")
            subscribe_ms = None
        at_ms = start_ms
        yield event("login", at_ms)
        for _ in range(rng.randint(0, 5)):
            at_ms += int(rng.expovariate(1 / 180_000))  # minutes apart
            yield event("feature_used", at_ms, feature=rng.choice(("import", "share", "api")))


def trial_users(customers: int, seed: int = 17) -> tuple[list[TimedEvent], Traits]:
    """The events of `customers` simulated trial users, in time order, and their traits."""
    rng = random.Random(seed)
    events: list[TimedEvent] = []
    traits: Traits = {}
    for number in range(customers):
        customer = f"trial-{number:05d}"
        signup_ms = START_MS + rng.randrange(7 * DAY_MS)
        traits[customer] = _trial_traits(rng, signup_ms + TRIAL_DAYS * DAY_MS)
        events.extend(_trial_events(rng, customer, signup_ms))
    events.sort(key=lambda timed: timed.now_ms)
    return events, traits


def workloads(customers: int) -> dict[str, Workload]:
    """Each variant of the trial journey with the same trial users' events, by name."""
    events, traits = trial_users(customers)
    found = {}
    for name, text in variant_texts(TRIAL.read_text(encoding="utf-8")).items():
        loaded = parse_journeys([(f"trial.yaml ({name})", text)])
        found[name] = Workload(loaded, compile_ruleset(loaded), events, traits)
    return found


# --- measuring -----------------------------------------------------------------------------------


Replayed = tuple[list[tuple[str, int, str]], dict[str, "CustomerState"]]
Samples = tuple[list[float], list[float]]  # µs: per event of each replay, per trait_features


def replay(workload: Workload) -> Replayed:
    """A replay of `decide()` from fresh states: every action offered (customer, ms, action),
    and each customer's state after it."""
    offered = []
    states = workload.fresh_states()
    for timed in workload.events:
        customer = timed.event.customer_id
        decision, states[customer] = decide(workload.ruleset, states[customer], timed.event,
                                            timed.now_ms)  # fmt: skip
        offered += [(customer, timed.now_ms, a.action) for a in decision.actions]
    return offered, states


def _replay_us(workload: Workload) -> float:
    """µs per event of one replay of `decide()` from fresh states."""
    states = workload.fresh_states()
    start_ns = time.perf_counter_ns()
    count = workload.replay(decide, states)
    return (time.perf_counter_ns() - start_ns) / 1_000 / count


def _traits_us(workload: Workload, times: int = 10) -> float:
    """µs per call of `trait_features` alone (what decide() makes of the customer's traits on
    every decision, `until:` dates parsed there) over every customer's traits, `times` over."""
    ruleset, traits = workload.ruleset, list(workload.traits.values()) * times
    start_ns = time.perf_counter_ns()
    for each in traits:
        trait_features(ruleset, each)
    return (time.perf_counter_ns() - start_ns) / 1_000 / len(traits)


def _rotated(rounds: int) -> Iterator[str]:
    """The variants `rounds` times, the order rotated by one each round."""
    for number in range(rounds):
        shift = number % len(VARIANTS)
        yield from VARIANTS[shift:] + VARIANTS[:shift]


def measure_decide(found: dict[str, Workload], rounds: int) -> dict[str, Samples]:
    """Each variant's µs per event of its replays and of `trait_features` alone, in the order
    run (warmed up by the caller); the collector paused throughout, as `timeit` does."""
    samples: dict[str, Samples] = {name: ([], []) for name in VARIANTS}
    with gc_paused():
        for name in _rotated(rounds):
            replays, traits = samples[name]
            replays.append(round(_replay_us(found[name]), 3))
            traits.append(round(_traits_us(found[name]), 3))
    return samples


def measure_many(found: dict[str, Workload], repeats: int) -> dict[str, list[float]]:
    """decide_many() events per second on the base and on all three, events already encoded,
    from fresh states; one warm-up each, then alternated."""
    runs = {}
    for name in ("base", "all"):
        workload = found[name]
        events = [timed.event for timed in workload.events]
        batch = encode_events(workload.ruleset, events, [t.now_ms for t in workload.events])
        runs[name] = (workload, batch)
        decide_many(workload.ruleset, batch, states=workload.fresh_states())
    rates: dict[str, list[float]] = {name: [] for name in runs}
    with gc_paused():
        for number in range(repeats):
            for name in ("base", "all") if number % 2 == 0 else ("all", "base"):
                workload, batch = runs[name]
                states = workload.fresh_states()
                start = time.perf_counter()
                decide_many(workload.ruleset, batch, states=states)
                rates[name].append(round(len(batch) / (time.perf_counter() - start)))
    return rates


def _variant(workload: Workload, replayed: Replayed, samples: Samples) -> ConditionsVariant:
    (offered, states), (replays, traits) = replayed, samples
    sizes = [len(encode_state(workload.ruleset, state)) for state in states.values()]
    return {
        "us_per_event": min(replays),
        "us_per_event_median": statistics.median(replays),
        "samples_us": replays,
        "traits_us": min(traits),
        "state_bytes_mean": statistics.fmean(sizes),
        "state_bytes_max": max(sizes),
        "offers": dict(sorted(Counter(action for _, _, action in offered).items())),
    }


def measure(quick: bool = False, plan: Plan | None = None) -> ConditionsCostFigures:
    """Every figure of the module docstring."""
    plan = plan or (QUICK if quick else Plan())
    started, load_at_start = time.perf_counter(), load_average()
    found = workloads(plan.customers)
    replayed = {name: replay(found[name]) for name in VARIANTS}  # each warms its timed replays
    samples = measure_decide(found, plan.rounds)
    many = measure_many(found, plan.many_repeats)
    variants = {name: _variant(found[name], replayed[name], samples[name]) for name in VARIANTS}
    return {
        "plan": {
            "customers": plan.customers,
            "rounds": plan.rounds,
            "many_repeats": plan.many_repeats,
        },
        "events": len(found["all"].events),
        "variants": variants,
        "many_events_per_s": {name: statistics.median(rates) for name, rates in many.items()},
        "many_samples_per_s": many,
        "load_average_start": load_at_start,
        "load_average_end": load_average(),
        "seconds": round(time.perf_counter() - started, 1),
    }


# --- the command line ----------------------------------------------------------------------------


def _section(runs: Runs) -> Section:
    from benchmarks.report.sections import conditions_section

    return conditions_section(runs)


RUN = AddedRun(
    RUN_NAME, "benchmarks.engine.conditions_cost", lambda quick: measure(quick=quick), 13, _section
)


def main(argv: Sequence[str] | None = None) -> int:
    return added_run.main(RUN, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
