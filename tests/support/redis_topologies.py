"""Throwaway Redis deployments for tests: a Redis Cluster (3 primaries, 3 replicas) and a
primary with a replica watched by three Sentinels, each on free ports in a directory of its
own. Without redis-server they skip (fail under CALLRELAY_REQUIRE_REDIS=1, as CI sets)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.cluster import RedisCluster
from redis.sentinel import MasterNotFoundError, Sentinel

from tests.support.redis_server import _unavailable

# A node that stops answering is failed over after this (short, so the tests are quick).
NODE_TIMEOUT_MS = 1000


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        _unavailable(f"{name} is not on PATH")
    assert found is not None
    return found


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, bus: bool = False) -> list[int]:
    """`count` ports nothing listens on (and, with `bus`, nor on port + 10000: a cluster
    node's bus)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port in ports or (bus and (port > 55000 or not _free(port + 10000))):
            continue
        ports.append(port)
    return ports


def _until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _ping(port: int) -> bool:
    client = redis.Redis(port=port, socket_connect_timeout=0.2, socket_timeout=1)
    try:
        return bool(client.ping())
    finally:
        client.close()


def _in_sync(port: int) -> bool:
    """A primary, or a replica whose link to its primary is up (it has synced once)."""
    client = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
    try:
        info = client.info("replication")
    finally:
        client.close()
    return info.get("role") == "master" or info.get("master_link_status") == "up"


class Node:
    """One redis-server (or sentinel) process, killed without a clean shutdown."""

    def __init__(self, port: int, args: list[str], workdir: Path) -> None:
        self.port, self.args, self.workdir = port, args, workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        log = (self.workdir / f"{self.port}.log").open("ab")
        self.process = subprocess.Popen([_binary("redis-server"), *self.args],
                                        cwd=self.workdir, stdout=log, stderr=log)
        log.close()
        _until(lambda: _ping(self.port), f"redis on port {self.port}", 10)
        return self

    def pause(self) -> None:
        """SIGSTOP: the process answers nothing until `resume` (a stalled host or link)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def _server_args(port: int) -> list[str]:
    # A replica's first sync at once (not after the default 5 s): until it has synced it
    # could not take over.
    return ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--repl-diskless-sync-delay", "0"]


class LocalCluster:
    """Six nodes, `redis-cli --cluster create … --cluster-replicas 1`: three shards, each a
    primary and its replica. Nothing on disk but the nodes' cluster configuration, so a
    restart brings the same cluster back, empty."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.nodes = [Node(port, [*_server_args(port), "--cluster-enabled", "yes",
                                  "--cluster-config-file", f"nodes-{port}.conf",
                                  "--cluster-node-timeout", str(NODE_TIMEOUT_MS)], workdir)
                      for port in free_ports(6, bus=True)]
        self.url = f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> LocalCluster:
        first = not any(self.workdir.glob("nodes-*.conf"))
        for node in self.nodes:
            node.start()
        if first:
            subprocess.run([_binary("redis-cli"), "--cluster", "create",
                            *(f"127.0.0.1:{n.port}" for n in self.nodes),
                            "--cluster-replicas", "1", "--cluster-yes"],
                           check=True, capture_output=True, timeout=60)
        _until(self.ready, "the cluster to cover every slot", 60)
        return self

    def ready(self) -> bool:
        """Every node says the cluster is ok, with three primaries serving every slot, and
        every replica has synced (a failover could promote it)."""
        for node in self.nodes:
            client = redis.Redis(port=node.port, socket_timeout=1, decode_responses=True)
            try:
                info = client.cluster("info")
            finally:
                client.close()
            if info.get("cluster_state") != "ok" or int(info["cluster_size"]) != 3:
                return False
        return all(_in_sync(node.port) for node in self.nodes)

    def client(self) -> RedisCluster:
        return RedisCluster.from_url(self.url, decode_responses=True)

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


class LocalSentinel:
    """A primary, its replicas (one unless told) and three Sentinels that watch them
    (quorum 2)."""

    MASTER = "callrelay-test"

    def __init__(self, workdir: Path, replicas: int = 1) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        primary, *others = free_ports(4 + replicas)
        replica_ports, sentinels = others[:replicas], others[replicas:]
        self.primary = Node(primary, _server_args(primary), workdir)
        self.replicas = [Node(port, [*_server_args(port), "--replicaof", "127.0.0.1",
                                     str(primary)], workdir) for port in replica_ports]
        self.sentinels = []
        for port in sentinels:
            conf = workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {self.MASTER} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {self.MASTER} {NODE_TIMEOUT_MS}\n"
                f"sentinel failover-timeout {self.MASTER} 5000\n")
            self.sentinels.append(Node(port, [str(conf), "--sentinel"], workdir))
        self.addresses = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        self.url = "redis://127.0.0.1/0"  # the host is Sentinel's to name

    def start(self) -> LocalSentinel:
        self.primary.start()
        for replica in self.replicas:
            replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        _until(self.ready, "the sentinels to see the replica", 30)
        return self

    def sentinel(self) -> Sentinel:
        return Sentinel([("127.0.0.1", s.port) for s in self.sentinels], socket_timeout=1)

    def primary_port(self) -> int | None:
        """The port of the primary the Sentinels name; None while they name none (it is
        down and no replica promoted yet)."""
        try:
            _host, port = self.sentinel().discover_master(self.MASTER)
        except MasterNotFoundError:
            return None
        return int(port)

    def ready(self) -> bool:
        """Every Sentinel knows the primary, the replicas and the two other Sentinels, and
        every replica is in sync (a failover could promote it)."""
        for node in self.sentinels:
            client = redis.Redis(port=node.port, socket_timeout=1, decode_responses=True)
            try:
                master = client.sentinel_master(self.MASTER)
            finally:
                client.close()
            if int(master["num-slaves"]) < len(self.replicas) \
                    or int(master["num-other-sentinels"]) < 2:
                return False
        return all(_in_sync(node.port) for node in self.replicas)

    def cut_replicas(self) -> None:
        """A partition between the primary and its replicas: the replicas stall, and the
        primary drops their links (what it writes from now on reaches no replica)."""
        for replica in self.replicas:
            replica.pause()
        client = redis.Redis(port=self.primary.port, socket_timeout=1)
        try:
            client.client_kill_filter(_type="replica")
        finally:
            client.close()

    def stop(self) -> None:
        for node in (*self.sentinels, *self.replicas, self.primary):
            node.resume()
            node.kill()

