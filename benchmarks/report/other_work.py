"""How much of the machine other work took while a benchmark ran: the noise in its figures.

The load average counts the benchmark's own processes too (a server and its driver keep 2 cores
busy), so read at the end of a run it says "busy" of any run. Here the machine's CPU time
(/proc/stat) less the benchmark's own (this process and its children, each waited for when
stopped) is what others took: other processes, and the hypervisor's other guests (steal).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

BUSY = "**a busy machine**; figures are noisy, run again on a quiet one"
# Past these shares of the machine's CPU during a run, other work is noted as having shared it:
# other processes' CPU (a neighbour on the same host, an indexer, a forgotten server), and time
# the hypervisor gave another guest (steal). Well below what moves a ratio by its own noise.
OTHERS_AT_MOST = 0.05
STEAL_AT_MOST = 0.02


@dataclass(frozen=True)
class MachineCpu:
    """The machine's CPU seconds so far, all cores (/proc/stat), and this process's with its
    children that ended (`os.times`: the benchmark's servers, Redis and drivers are its
    children, each waited for when stopped)."""

    busy_s: float  # every process's user and system time, and interrupts, on the machine
    steal_s: float  # time the hypervisor ran other guests on this machine's cores
    ours_s: float
    at_s: float  # time.monotonic()

    @staticmethod
    def now() -> MachineCpu:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
        assert fields[0] == "cpu", "the first line of /proc/stat sums every core"
        ticks = [int(value) for value in fields[1:]]
        per_s = os.sysconf("SC_CLK_TCK")
        # Interrupt time too: a process's system time includes the interrupts handled in its
        # context (its loopback traffic), which /proc/stat books as irq and softirq.
        user, nice, system, _, _, irq, softirq = ticks[0:7]
        steal = ticks[7] if len(ticks) > 7 else 0
        times = os.times()
        return MachineCpu(
            (user + nice + system + irq + softirq) / per_s,
            steal / per_s,
            times.user + times.system + times.children_user + times.children_system,
            time.monotonic(),
        )


def others_share(begin: MachineCpu, end: MachineCpu, cores: int | None = None) -> str:
    """What other work took of the machine's cores between `begin` and `end`: other processes'
    CPU and the hypervisor's steal, as shares of every core's time, judged."""
    cores = cores or os.cpu_count() or 1
    capacity_s = max(end.at_s - begin.at_s, 1e-9) * cores
    others = max(0.0, (end.busy_s - begin.busy_s) - (end.ours_s - begin.ours_s)) / capacity_s
    steal = max(0.0, end.steal_s - begin.steal_s) / capacity_s
    shown = f"other processes {others:.1%}, steal {steal:.1%} of the {cores} cores' time"
    if others > OTHERS_AT_MOST or steal > STEAL_AT_MOST:
        return f"{shown}: {BUSY}"
    return f"{shown}: a quiet machine"


# The machine header's line for what other work took during a session's runs.
OTHER_WORK = "other work on the machine during the runs"
