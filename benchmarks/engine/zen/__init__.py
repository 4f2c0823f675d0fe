"""A journey written for zen-engine (GoRules' JSON Decision Model), for
`benchmarks.engine.peer_zen`.

`expressions` turns rule conditions into ZEN expressions, `jdm` builds the decision graph from a
loaded journey (and writes `retail.json`, the graph of `rules/retail.yaml`, for people to read),
and `harness` is what a service built on zen-engine would keep per customer between calls.
"""
