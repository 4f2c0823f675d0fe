"""Customer state in Redis: key layout (`keys`), the Lua scripts (`lua/`), the client tuned for the
hot path (`connection`), what a failed Redis call becomes (`errors`: StoreUnavailable,
StoreRefused), one-round-trip load, compare-and-set commit and journey statistics counters
(`redis_store`), pipelining of concurrent callers (`pipelining`), Redis Cluster (`cluster`). May
import `core`."""
