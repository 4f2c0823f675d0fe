"""Redis, measured for what the service asks of it.

`ceiling` runs the service's load and commit commands against a redis-server of its own
(redis-benchmark and redis-py, unpipelined and pipelined): the ceiling every Redis figure is
read against. `memory` measures what a customer costs in Redis after a simulated year, and the
server's RSS under load. `round_trip` measures a round trip's client CPU, with no client library
and through the service's own (for `benchmarks.decision_parts`).
"""
