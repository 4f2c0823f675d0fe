"""Adaptive arbitration against static priorities and uniform random: cumulative regret.

Simulated shoppers, each new, meet one of five banners in one stage; banner k is clicked with a
true probability the rules do not know (TRUE_CLICK_RATES). Each policy picks one banner per
shopper; regret adds up, shopper by shopper, how much likelier a click the best banner would
have been than the one shown:

- adaptive: `decide()` on a journey with `arbitration: adaptive` and equal priorities (an
  adaptive score is priority times the sampled rate: equal priorities let the rate decide),
  whose learned tables are rebuilt every REFRESH_EVERY shoppers from the clicks so far, as the
  service refreshes them from Redis (`server/decisions/learned_rates.py`);
- static priorities: the same journey with `arbitration: priority` and a marketer's guess of the
  order (STATIC_GUESS: a plausible guess, not the worst), decided by `decide()` too;
- uniform random: a banner drawn uniformly (its expected regret, computed, not simulated).

    python -m benchmarks.engine.regret [--shoppers N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import random
from typing import TypedDict

import numpy as np

from engine.compile import Ruleset, compile_ruleset
from engine.decide import decide
from engine.event import Event
from engine.propensity import propensity_table
from engine.rules.load import parse_journey
from engine.state import new_state

TRUE_CLICK_RATES = (0.02, 0.04, 0.06, 0.08, 0.10)
STATIC_GUESS = (3, 5, 1, 4, 2)  # priorities a marketer wrote: banner 1 first, the best third
REFRESH_EVERY = 1_000
SHOPPERS = 100_000
NOW_MS = 1_767_600_000_000

_JOURNEY = """
journey: banners
version: 1
top_k: 1
arbitration: {arbitration}
stages:
  - id: browsing
goals:
  click:
    when:
      response: click
    window: 1d
actions:
{actions}
"""


class RegretFigures(TypedDict):
    shoppers: int
    true_click_rates: list[float]
    adaptive_regret: float
    static_regret: float
    random_regret: float
    adaptive_over_static: float
    adaptive_best_share_last_10k: float  # how often adaptive showed the best banner at the end


def banners(arbitration: str) -> Ruleset:
    priorities = STATIC_GUESS if arbitration == "priority" else [10] * len(STATIC_GUESS)
    actions = "\n".join(
        f"  - id: banner_{k}\n    priority: {priority}" for k, priority in enumerate(priorities)
    )
    text = _JOURNEY.format(arbitration=arbitration, actions=actions)
    return compile_ruleset([parse_journey(text, f"{arbitration}.yaml")])


def _shown(ruleset: Ruleset, shopper: int, tables: dict[str, np.ndarray] | None) -> int:
    event = Event(f"view-{shopper}", f"shopper-{shopper}", "page_view")
    decision, _ = decide(ruleset, new_state(ruleset), event, NOW_MS, propensities=tables)
    return int(decision.action_ids[0].removeprefix("banner_"))


def adaptive_run(shoppers: int, seed: int) -> tuple[float, list[int]]:
    """(cumulative regret, banner shown to each shopper) of adaptive arbitration."""
    ruleset = banners("adaptive")
    journey = ruleset.journeys[0]
    clicks_rng = random.Random(seed)
    best = max(TRUE_CLICK_RATES)
    shown_counts = [0] * len(TRUE_CLICK_RATES)
    click_counts = [0] * len(TRUE_CLICK_RATES)
    tables: dict[str, np.ndarray] | None = None
    regret, shown = 0.0, []
    for shopper in range(shoppers):
        if shopper % REFRESH_EVERY == 0 and shopper:
            learned = {
                (f"banner_{k}", "browsing"): (shown_counts[k], click_counts[k])
                for k in range(len(TRUE_CLICK_RATES))
            }
            tables = {journey.name: propensity_table(journey, learned)}
        banner = _shown(ruleset, shopper + seed * shoppers, tables)
        shown.append(banner)
        shown_counts[banner] += 1
        click_counts[banner] += clicks_rng.random() < TRUE_CLICK_RATES[banner]
        regret += best - TRUE_CLICK_RATES[banner]
    return regret, shown


def static_regret(shoppers: int) -> float:
    """Static priorities show every shopper the same banner: decided once, counted N times."""
    banner = _shown(banners("priority"), 0, None)
    return shoppers * (max(TRUE_CLICK_RATES) - TRUE_CLICK_RATES[banner])


def random_regret(shoppers: int) -> float:
    return shoppers * (max(TRUE_CLICK_RATES) - sum(TRUE_CLICK_RATES) / len(TRUE_CLICK_RATES))


def measure(shoppers: int = SHOPPERS, seed: int = 1) -> RegretFigures:
    adaptive, shown = adaptive_run(shoppers, seed)
    static = static_regret(shoppers)
    best = TRUE_CLICK_RATES.index(max(TRUE_CLICK_RATES))
    tail = shown[-10_000:]
    return RegretFigures(
        shoppers=shoppers,
        true_click_rates=list(TRUE_CLICK_RATES),
        adaptive_regret=adaptive,
        static_regret=static,
        random_regret=random_regret(shoppers),
        adaptive_over_static=adaptive / static,
        adaptive_best_share_last_10k=tail.count(best) / len(tail),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=SHOPPERS)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(measure(args.shoppers, args.seed), indent=2))


if __name__ == "__main__":
    main()
