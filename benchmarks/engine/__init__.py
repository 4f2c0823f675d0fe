"""`decide()` in one process, no server: what it costs per event and where the time goes.

`kernels` is the micro-benchmark entry (`python -m benchmarks.engine.kernels`, kernels.md): it
replays `workload`s of simulated shoppers on the retail and the `generated_rules` journeys,
times them with `timing` against the `ceilings` (an empty Python call, a bare numba call), and
adds `startup` (cold and warm first decide), `steps` (own time per step) and the `reference`
evaluator; `figures` and `tables` make its table. `peer_zen` (with `zen/`) runs the same journey
on zen-engine, beside `decide()`. `regret` measures adaptive arbitration; `conditions_cost`
what `since:`, `until:` and a contact policy add per event (RESULTS.md section 13, run after
`benchmarks.run_all` through `benchmarks.added_run`).
"""
