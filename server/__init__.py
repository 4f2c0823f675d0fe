"""The service around the engine: everything that does I/O. Rooms, lowest first; a room may
import the engine and the rooms below it, never one above (tests/unit/test_boundaries.py):

- `core`: settings, metrics, logs, the event loop, the batching coalescer
- `store`: Redis keys, scripts, load and commit, journey statistics' counters, cluster
- `protocol`: API messages to engine types and back, validation, errors and status codes
- `decisions`: a Decide call from validated event to stored decision; Identify
- `rules`: the rules files and the ruleset in force, reloaded on change
- `analytics`: reports read from the counted statistics (the action report)
- `api`: the gRPC servicer and its interceptors (admission, tokens)
- `runtime`: the process: the server, `journeyman serve`, workers, embedded Redis
- `tools`: the command line, `journeyman status`, the container health check
"""
