"""The circuit breaker opens after repeated failures, probes once it has waited, closes on a
successful probe."""

from __future__ import annotations

from server.decisions.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_the_threshold_then_lets_one_probe_through_after_the_pause() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, open_s=0.5, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failed()
    assert breaker.allow() and not breaker.is_open
    breaker.failed()
    assert breaker.is_open and not breaker.allow()
    clock.now += 0.6
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.succeeded()
    assert not breaker.is_open and breaker.allow()


def test_a_failed_probe_opens_it_again_and_an_unfinished_one_releases_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, open_s=0.5, clock=clock)
    breaker.failed()
    clock.now += 0.6
    assert breaker.allow()
    breaker.failed()
    assert not breaker.allow()
    clock.now += 0.6
    assert breaker.allow()
    breaker.settle()  # e.g. the probing call conflicted or was cancelled
    assert breaker.allow()
