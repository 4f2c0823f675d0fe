"""What Redis is charged with for a round trip out: the wall time this thread was not running,
since it went out or since one abandoned unanswered just before it."""

from __future__ import annotations

import time

from server.store.waiting import Abandoned, SentAt

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


def test_a_round_trip_abandoned_unanswered_counts_for_the_one_sent_behind_it() -> None:
    abandoned = Abandoned(budget_s=10.0)
    first = SentAt.now()
    time.sleep(OWN_WORK_S)
    abandoned.add(first)  # its caller's deadline cut it: Redis never answered
    behind = SentAt.now()

    assert abandoned.oldest(behind) is first
    assert abandoned.oldest(behind).redis_s() >= OWN_WORK_S * 0.9


def test_a_round_trip_abandoned_unanswered_counts_while_none_is_out() -> None:
    """The calls queued behind it may not have gone out yet when their deadline comes: Redis,
    not this server's queue, is what they waited on (a CI run answered one Busy for it)."""
    abandoned = Abandoned(budget_s=10.0)
    assert abandoned.oldest(None) is None
    first = SentAt.now()
    abandoned.add(first)

    assert abandoned.oldest(None) is first
    abandoned.answered()
    assert abandoned.oldest(None) is None


def test_an_answer_or_a_reply_budget_gone_by_ends_what_an_abandoned_round_trip_tells() -> None:
    answered = Abandoned(budget_s=10.0)
    answered.add(SentAt.now())
    answered.answered()  # Redis answered a later round trip
    later = SentAt.now()
    assert answered.oldest(later) is later

    long_ago = Abandoned(budget_s=OWN_WORK_S)
    long_ago.add(SentAt.now())
    time.sleep(OWN_WORK_S * 2)  # longer than a reply may take: no longer about this Redis
    now = SentAt.now()
    assert long_ago.oldest(now) is now
