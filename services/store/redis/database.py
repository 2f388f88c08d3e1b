"""One Redis deployment shared by the Redis adapters: a client per process, bounded timeouts,
and the writes that must reach replicas before they are acknowledged."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, cast

import redis
from redis.cluster import RedisCluster
from redis.connection import ConnectionPool
from redis.exceptions import MovedError, RedisClusterException

from services.errors import StoreUnavailable
from services.store.redis.topology import RedisTopology

log = logging.getLogger(__name__)


class NotReplicated(StoreUnavailable):
    """Fewer replicas than REDIS_MIN_REPLICAS acknowledged a write in time (503: Twilio
    retries the callback, and the retry writes it again)."""


class _Pinned:
    """A connection pool of one connection, which it never gives back while pinned: WAIT
    counts the replicas that have the writes sent on *its* connection, so the transaction and
    the WAIT after it must share one."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.connection = pool.get_connection()

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        return self.connection

    def release(self, connection: Any) -> None:
        """Kept until `unpin`."""

    def unpin(self) -> None:
        self.pool.release(self.connection)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)


class RedisDatabase:
    """A Redis URL and topology: a client per process (sockets must not cross a fork), and
    errors."""

    def __init__(self, url: str, topology: RedisTopology | None = None) -> None:
        redis.connection.parse_url(url)  # a malformed URL fails here, not on the first call
        self._url = url  # never logged nor put in a message: it may hold a password
        self.topology = topology or RedisTopology()
        self._clients: dict[int, redis.Redis] = {}
        self._modern: dict[int, bool] = {}
        # Told of each write too few replicas acknowledged (the app counts them in /metrics).
        self.on_not_replicated: list[Callable[[], None]] = []

    def client(self) -> redis.Redis:
        """This process's client, built on first use (a RedisCluster on a cluster)."""
        pid = os.getpid()
        client = self._clients.get(pid)
        if client is None:
            client = self.topology.connect(self._url)
            self._clients = {pid: client}
        return client

    def modern(self) -> bool:
        """Whether the server knows EXPIRE NX/GT and ZADD GT (Redis >= 7)."""
        pid = os.getpid()
        known = self._modern.get(pid)
        if known is None:
            client = self.client()
            try:
                info = client.info("server")  # on a cluster, one node's: they run one version
                version = str(info.get("redis_version", "0"))
                known = int(version.split(".")[0]) >= 7
            except (redis.ResponseError, ValueError):
                known = False  # INFO hidden or odd: assume the worst
            self._modern = {pid: known}
        return known

    def _node(self, key: str) -> redis.Redis:
        """A plain client on the server that holds `key`: the client itself, or on a cluster
        the primary of the key's slot."""
        client = self.client()
        if not self.topology.cluster:
            return client
        cluster = cast(RedisCluster, client)
        return cluster.get_redis_connection(cluster.get_node_from_key(key))

    @contextmanager
    def writing(self, key: str) -> Iterator[redis.Redis]:
        """A client on one connection to the server holding `key`, for a write (a WATCH/MULTI
        transaction, a script) on that key's slot. With REDIS_MIN_REPLICAS, WAIT follows the
        block on the same connection: NotReplicated unless enough replicas have the writes."""
        pinned: _Pinned | None = None
        try:
            node = self._node(key)
            if self.topology.min_replicas <= 0:
                yield node  # no WAIT: any pooled connection will do
                return
            pinned = _Pinned(node.connection_pool)  # connects: may fail too
            yield redis.Redis(connection_pool=cast(ConnectionPool, pinned))
            self._wait(pinned)
        except (MovedError, redis.ConnectionError, redis.TimeoutError):
            # The slot moved (a reshard) or its primary died (a failover): learn the cluster's
            # map again for the next try; this one answers 503 (Twilio retries a callback).
            if self.topology.cluster:
                with suppress(redis.RedisError, RedisClusterException):
                    cast(RedisCluster, self.client()).nodes_manager.initialize()
            raise
        finally:
            if pinned is not None:
                pinned.unpin()

    def _wait(self, pinned: _Pinned) -> None:
        wanted = self.topology.min_replicas
        if wanted <= 0:
            return
        client = redis.Redis(connection_pool=cast(ConnectionPool, pinned))
        acknowledged = int(client.wait(wanted, self.topology.wait_timeout_ms))
        if acknowledged < wanted:
            log.warning("a write reached %d of the %d replicas REDIS_MIN_REPLICAS asks for; "
                        "not acknowledged", acknowledged, wanted)
            for listener in self.on_not_replicated:
                listener()
            raise NotReplicated("The store (Redis) could not copy the write to enough "
                                "replicas in time; retry shortly.")

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn any Redis error into StoreUnavailable (503), naming the data, not the server."""
        try:
            yield
        except (redis.RedisError, RedisClusterException) as exc:
            name = exc.__class__.__name__
            raise StoreUnavailable(f"The store (Redis) failed: {name}.") from exc

    def close(self) -> None:
        """Disconnect this process's pools; the next call builds new ones."""
        client = self._clients.pop(os.getpid(), None)
        if client is None:
            return
        if self.topology.cluster:
            client.close()  # every node's pool
        else:
            client.connection_pool.disconnect()
