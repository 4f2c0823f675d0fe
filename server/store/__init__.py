"""Customer state in Redis: key layout (`keys`), the Lua scripts (`lua/`), one-round-trip load and
compare-and-set commit, journey statistics counters (`redis_store`), pipelining of concurrent
callers, Redis Cluster. May import `core`."""
