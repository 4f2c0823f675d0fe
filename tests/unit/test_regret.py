"""The adaptive-arbitration benchmark's simulation, small: adaptive arbitration must learn the
best banner, so its regret ends far below a static guess's and uniform random's."""

from __future__ import annotations

from benchmarks.engine.regret import TRUE_CLICK_RATES, measure


def test_adaptive_arbitration_learns_the_best_banner() -> None:
    figures = measure(shoppers=12_000, seed=3)
    assert figures["adaptive_regret"] <= figures["static_regret"] / 3
    assert figures["adaptive_regret"] < figures["random_regret"] / 2
    # In the last 10,000 shoppers the best banner is shown far more often than by chance.
    assert figures["adaptive_best_share_last_10k"] > 3 / len(TRUE_CLICK_RATES)
