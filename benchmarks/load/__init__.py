"""The service under load over gRPC, each figure read against a ceiling run the same way.

`service` starts `journeyman serve` (or the `echo` ceiling: same messages, no work) as a child on
a free port; `drive` is the lean asyncio driver (unary, stream, batch; closed or open loop);
`overload` offers 1–8× the sustainable rate; `replay` sends the real BPIC 2012 log through
DecideStream and checks every customer's stage against `decide()`; `locustfile` and `grpc_user`
are locust's gRPC pattern, which `run_locust` runs headless and reads back.
"""
