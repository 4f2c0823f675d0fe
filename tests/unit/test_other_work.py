"""What other work took of the machine during a benchmark: the machine's CPU time less the
benchmark's own (its process and the children it waited for), and the hypervisor's steal."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from benchmarks.report.other_work import BUSY, MachineCpu, others_share

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass"


def _cpu(busy_s: float, ours_s: float, at_s: float, steal_s: float = 0.0) -> MachineCpu:
    return MachineCpu(busy_s=busy_s, steal_s=steal_s, ours_s=ours_s, at_s=at_s)


def test_the_benchmarks_own_cpu_is_not_other_work() -> None:
    # 10 s on 2 cores: 20 core-seconds; the machine busy 15 s of them, 14.5 s the benchmark's.
    said = others_share(_cpu(100, 50, 0), _cpu(115, 64.5, 10), cores=2)
    assert said.startswith("other processes 2.5%, steal 0.0% of the 2 cores' time")
    assert said.endswith("a quiet machine")


def test_other_processes_or_steal_past_their_share_make_a_busy_machine() -> None:
    others = others_share(_cpu(100, 50, 0), _cpu(115, 62, 10), cores=2)  # 3 s of 20: 15 %
    assert "other processes 15.0%" in others and others.endswith(BUSY)
    stolen = others_share(_cpu(100, 50, 0, steal_s=1), _cpu(110, 60, 10, steal_s=1.6), cores=2)
    assert "other processes 0.0%, steal 3.0%" in stolen and stolen.endswith(BUSY)


def test_clock_ticks_never_make_other_work_negative() -> None:
    # /proc/stat counts in ticks, os.times more finely: ours may read a little above the machine's.
    said = others_share(_cpu(100, 50, 0), _cpu(101, 51.2, 1), cores=2)
    assert said.startswith("other processes 0.0%")


def test_a_child_waited_for_counts_as_the_benchmarks_own() -> None:
    before = MachineCpu.now()
    subprocess.run([sys.executable, "-c", BURN], check=True)
    after = MachineCpu.now()
    assert after.ours_s - before.ours_s >= 0.55  # the child's CPU, once it was waited for
    assert after.busy_s - before.busy_s >= 0.5  # and the machine saw it


def test_a_process_not_waited_for_is_other_work() -> None:
    burner = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        before = MachineCpu.now()
        deadline = time.monotonic() + 20
        while _cpu_s(burner.pid) < 0.5:  # read before the burner is waited for
            assert time.monotonic() < deadline, "the burner never got 0.5 s of CPU"
            time.sleep(0.02)
        after = MachineCpu.now()
    finally:
        burner.wait()
    others_s = (after.busy_s - before.busy_s) - (after.ours_s - before.ours_s)
    assert others_s >= 0.4


def _cpu_s(pid: int) -> float:
    """User and system CPU of process `pid` so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
