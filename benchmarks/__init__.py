"""The benchmark set (`make bench`), grouped by what each part measures.

- `load`: the service under load over gRPC, and the servers it is read against: the load driver
  and its echo ceiling, overload, the real BPIC 2012 log through DecideStream, locust.
- `engine`: `decide()` in one process: the kernel micro-benchmarks (`kernels.md`), the call
  ceilings, the zen-engine peer.
- `redis`: Redis alone for the service's commands, and what a customer costs in it.
- `report`: the targets, each figure against its ceiling, and RESULTS.md.

Beside them: `run_all` runs every benchmark, bounded, into RESULTS.md; `traffic` simulates the
shoppers whose events every group sends. Nothing here is imported by `engine/` or `server/`, and
nothing here imports `tests` (`tests/unit/test_benchmark_boundaries.py`): what both need is in
the product, such as the event-log readers of `server/tools/event_logs.py`.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository
