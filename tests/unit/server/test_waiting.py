"""What Redis is charged with for a round trip out: the wall time this thread was not running."""

from __future__ import annotations

import time

from server.store.waiting import SentAt

OWN_WORK_S = 0.05


def test_time_spent_off_cpu_is_charged_to_redis() -> None:
    sent = SentAt.now()
    time.sleep(OWN_WORK_S)  # as the loop does, idle in its poll until Redis answers
    assert sent.redis_s() >= OWN_WORK_S * 0.9


def test_this_threads_own_work_is_not_charged_to_redis() -> None:
    """A reply that came while the loop ran other work waited for the loop, not for Redis."""
    sent = SentAt.now()
    spin_until = time.thread_time() + OWN_WORK_S
    while time.thread_time() < spin_until:
        pass
    wall_s = time.monotonic() - sent.wall_s
    assert sent.redis_s() <= wall_s - OWN_WORK_S
