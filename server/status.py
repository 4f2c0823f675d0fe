"""`journeyman status`: health, the ruleset in force and the key counters of a running server."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc

KEY_COUNTERS = (
    ("journeyman_decisions", "decisions"),
    ("journeyman_degraded_answers", "degraded answers"),
    ("journeyman_cas_conflicts", "CAS conflicts"),
    ("journeyman_shed_calls", "shed calls"),
    ("journeyman_rules_reload_failures", "refused reloads"),
)


def _counters(metrics_url: str, timeout_s: float) -> list[str]:
    try:
        with urllib.request.urlopen(metrics_url, timeout=timeout_s) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return [f"metrics: not reachable at {metrics_url} ({error})"]
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        totals[family.name] = sum(s.value for s in family.samples if s.name.endswith("_total"))
    return [f"{label}: {totals.get(name, 0.0):g}" for name, label in KEY_COUNTERS]


def status_lines(address: str, metrics_url: str, timeout_s: float = 2.0) -> tuple[bool, list[str]]:
    """(serving, lines to print) for the server at `address`. Raises grpc.RpcError when the
    server cannot be reached."""
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined]
            health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
        )
        ruleset = pb_grpc.JourneyServiceStub(channel).GetRuleset(
            pb.GetRulesetRequest(), timeout=timeout_s
        )
    state = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
    loaded = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ruleset.loaded_at_ms / 1000))
    lines = [
        f"health: {state}",
        f"ruleset: {ruleset.version} (loaded {loaded}; "
        f"{ruleset.reloads} reloads, {ruleset.failed_reloads} refused)",
        *(f"  {f.path}: journey {f.journey} {f.declared_version}" for f in ruleset.files),
        *_counters(metrics_url, timeout_s),
    ]
    return health.status == health_pb2.HealthCheckResponse.SERVING, lines
