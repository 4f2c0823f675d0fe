"""The load driver's CPU accounting of a server (`benchmarks.load.drive._tree_cpu_s`): the
process tree by name, and apart from it the event loop's thread, each server process's main
thread, where all of its Python runs.

Real processes burning real CPU, read from /proc; what is asserted is which thread the CPU is
charged to, with wide margins, never how fast anything is.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from benchmarks.load.drive import _tree_cpu_s

BURN_S = 0.3  # CPU seconds the child burns, in the thread the test names
# Burns BURN_S of its own thread's CPU in the main thread or in another one, says so, then waits
# (alive, so that /proc still has it) until its stdin closes.
CHILD = """
import sys, threading, time
def burn():
    start = time.thread_time()
    while time.thread_time() - start < {burn_s}:
        pass
if sys.argv[1] == "main":
    burn()
else:
    worker = threading.Thread(target=burn)
    worker.start()
    worker.join()
print("burnt", flush=True)
sys.stdin.read()
"""


@contextmanager
def _burning(where: str) -> Iterator[int]:
    """A child process that has burnt BURN_S in its `where` thread ("main" or "other") when
    this yields its pid."""
    with subprocess.Popen(
        [sys.executable, "-c", CHILD.format(burn_s=BURN_S), where],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as child:  # fmt: skip
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "burnt"
            yield child.pid
        finally:
            child.stdin.close()
            child.wait(timeout=10)


@pytest.mark.parametrize("where", ["main", "other"])
def test_the_event_loops_thread_is_charged_only_with_the_main_threads_cpu(where: str) -> None:
    with _burning(where) as pid:
        by_name, loop_thread_s = _tree_cpu_s(pid)
    total = sum(by_name.values())
    assert total >= BURN_S * 0.9  # the whole process: whichever thread burnt
    if where == "main":
        assert loop_thread_s >= BURN_S * 0.9
    else:
        # The interpreter's start-up is the main thread's: far less than what was burnt.
        assert loop_thread_s < BURN_S / 2
        assert total - loop_thread_s >= BURN_S * 0.9
