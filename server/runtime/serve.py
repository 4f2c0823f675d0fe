"""`journeyman serve`: the rules, Redis (embedded unless a URL is given), and one server process
(`server.runtime.serving`) or `--workers N` of them (`server.runtime.workers`)."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager

from server.core import event_loop
from server.core.config import Settings
from server.core.logs import configure_logging
from server.rules.rulesource import load_ruleset
from server.runtime.embedded_redis import RedisKeeper, start_embedded_redis
from server.runtime.serving import serve
from server.runtime.startup import say


@contextmanager
def redis_for(settings: Settings) -> Iterator[tuple[str, RedisKeeper | None]]:
    """The Redis URL to use, and what keeps it running: the settings' URL (None: nothing to
    keep), or an embedded Redis started here, restarted whenever it dies, stopped at the end."""
    if settings.redis_url is not None:
        yield settings.redis_url, None
        return
    folder = settings.data_dir / "redis"
    keeper = RedisKeeper(start_embedded_redis(folder))
    socket_path = shlex.quote(str(keeper.redis.socket_path))
    say(f"journeyman: embedded Redis with AOF persistence in {folder}, on the unix socket "
        f"{keeper.redis.socket_path} (redis-cli -s {socket_path})")  # fmt: skip
    try:
        yield keeper.redis.url, keeper
    finally:
        keeper.stop()


def run(settings: Settings) -> None:
    """Load the rules and serve (in `settings.workers` processes); the caller turns errors into
    messages and exit codes."""
    configure_logging(settings.log_level, settings.log_format)
    ruleset = load_ruleset(list(settings.rules))
    if settings.workers == 1:
        with redis_for(settings) as (redis_url, keeper):
            if keeper is not None:
                keeper.watch_in_background()
            event_loop.run(serve(settings, ruleset, redis_url), settings.event_loop)
        return
    from server.runtime.workers import claim_port, run_workers

    # The port first: a second supervisor on it stops before touching its data folder.
    with claim_port(settings), redis_for(settings) as (redis_url, keeper):
        run_workers(settings, ruleset, redis_url, keeper)
