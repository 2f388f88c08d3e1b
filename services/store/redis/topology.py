"""How callrelay reaches Redis: one server, a Redis Cluster, or a primary found through Sentinel.

Built from settings (REDIS_CLUSTER, REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_MIN_REPLICAS)
and the Redis URL; `connect` opens the matching redis-py client with the store's timeouts.
With Sentinel, the URL gives the primary's password, database and TLS; its host and port are
not used (Sentinel names the primary, and names another after a failover).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    import redis

# redis-py is imported where a client is built, not here: settings read this module in every
# worker, and a worker on SQLite or PostgreSQL never loads the Redis client.

Kind = Literal["plain", "cluster", "sentinel"]
# Bounded timeouts: an unreachable Redis costs a request at most a few seconds (503 after).
CONNECT_TIMEOUT_S, SOCKET_TIMEOUT_S = 1.0, 1.5
# How long a write waits for REDIS_MIN_REPLICAS replicas to acknowledge it (WAIT's timeout).
WAIT_TIMEOUT_MS = 1000


def _options() -> dict[str, Any]:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {"decode_responses": True, "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "socket_timeout": SOCKET_TIMEOUT_S, "health_check_interval": 30,
            "retry_on_timeout": False,
            # One immediate retry on a dropped connection (the server restarted); none on
            # timeouts, so an unreachable Redis costs at most one timeout per call.
            "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))}


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` -> ((host, port), …); ValueError naming what is wrong."""
    found = []
    for item in (part.strip() for part in text.split(",")):
        host, sep, port = item.rpartition(":")
        if not item or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port, got {item!r}")
        found.append((host.strip("[]"), int(port)))
    return tuple(found)


@dataclass(frozen=True)
class RedisTopology:
    """Which kind of Redis deployment the URL belongs to, and how many replicas must hold a
    write before it is acknowledged."""

    kind: Kind = "plain"
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str | None = None
    min_replicas: int = 0
    wait_timeout_ms: int = WAIT_TIMEOUT_MS

    @property
    def cluster(self) -> bool:
        return self.kind == "cluster"

    def connect(self, url: str) -> redis.Redis:
        """A client for `url` (never logged: it may hold a password). For a cluster, a
        RedisCluster, typed as redis.Redis: the store calls only commands both have."""
        import redis
        from redis.backoff import NoBackoff
        from redis.cluster import RedisCluster
        from redis.retry import Retry
        from redis.sentinel import Sentinel

        if self.kind == "cluster":
            # Every node answers CLUSTER SLOTS; keys are routed by slot from then on. A
            # failed-over slot is re-learnt on the next MOVED or connection error.
            options = _options()
            options.pop("health_check_interval")
            options["retry"] = Retry(NoBackoff(), 1)
            return cast(redis.Redis, RedisCluster.from_url(url, **options))
        if self.kind == "sentinel":
            given = redis.connection.parse_url(url)
            primary = {name: given[name] for name in ("db", "username", "password")
                       if given.get(name) is not None}
            if url.startswith("rediss://"):
                primary["ssl"] = True
            # No retries with backoff when asking the Sentinels (redis-py's default backs off
            # for seconds): one that does not answer is skipped for the next.
            sentinel = Sentinel(list(self.sentinels),
                                sentinel_kwargs={"socket_connect_timeout": CONNECT_TIMEOUT_S,
                                                 "socket_timeout": SOCKET_TIMEOUT_S,
                                                 "retry": Retry(NoBackoff(), 0)})
            client = sentinel.master_for(cast(str, self.master), redis_class=redis.Redis,
                                         **_options(), **primary)
            # Learn the primary now, before any connection exists: redis-py drops the idle
            # connections whenever the address it knows changes, and the first change, made
            # by threads racing to connect, could drop one another thread was being handed.
            client.connection_pool.get_master_address()
            return cast(redis.Redis, client)
        pool = redis.ConnectionPool.from_url(url, **_options())
        return redis.Redis(connection_pool=pool)

    def tag(self, name: str) -> str:
        """`name` as a key's hash tag on a cluster (`{name}`: the keys that carry it share a
        slot); as it is elsewhere, so a single server keeps the key names it always had."""
        return f"{{{name}}}" if self.cluster else name
