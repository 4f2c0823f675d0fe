"""`benchmarks.calls`: the calls a step makes, counted with sys.setprofile, split by where the
calling code lives. The functions counted here are written for the test, so every count is known
from their text."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.calls import CallCounter

HERE = str(Path(__file__).parent) + "/"


def _leaf(values: list[int]) -> int:
    return len(values) + max(values)  # two C calls


def _step(values: list[int]) -> int:
    return _leaf(values) + _leaf(values)  # two Python calls, four C calls below them


def test_each_python_and_c_call_is_counted_once() -> None:
    counter = CallCounter(engine_dir="/nowhere/")
    with counter:
        _step([1, 2, 3])
    # _step, _leaf twice; len and max in each _leaf; not the counter's own way out.
    assert (counter.python, counter.c) == (3, 4)
    assert (counter.engine_python, counter.engine_c) == (0, 0)


def test_calls_made_by_code_in_the_engine_folder_are_counted_as_its_own() -> None:
    counter = CallCounter(engine_dir=HERE)  # this file stands in for the engine
    with counter:
        _step([4, 5])
    assert (counter.engine_python, counter.engine_c) == (3, 4)


def test_counts_add_up_over_entries_and_divide_by_events() -> None:
    counter = CallCounter(engine_dir="/nowhere/")
    for _ in range(4):
        with counter:
            _leaf([1])
    counts = counter.per_event(4)
    assert counts == {"python": 1.0, "c": 2.0, "engine_python": 0.0, "engine_c": 0.0}
    with pytest.raises(ValueError, match="count at least one"):
        counter.per_event(0)


def test_it_refuses_to_mix_its_counts_with_another_profiler() -> None:
    def other(frame: object, event: str, arg: object) -> None:
        return None

    sys.setprofile(other)
    try:
        with pytest.raises(RuntimeError, match="already set"), CallCounter():
            pass
        assert sys.getprofile() is other  # left in place
    finally:
        sys.setprofile(None)
