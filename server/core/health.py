"""The names of the gRPC health services the server answers for, shared by the server and its
health clients."""

from __future__ import annotations

# The store's health: SERVING while Redis answers, NOT_SERVING while none does (the whole
# server, service "", stays SERVING: degraded answers are still answers).
STORE_SERVICE = "journeyman.v1.Store"
