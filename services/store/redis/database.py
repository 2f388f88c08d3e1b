"""One Redis server shared by the Redis adapters: a client per process, bounded timeouts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.errors import StoreUnavailable


class RedisDatabase:
    """A Redis URL: a client and pool per process (sockets must not cross a fork), and errors."""

    def __init__(self, url: str) -> None:
        redis.connection.parse_url(url)  # a malformed URL fails here, not on the first call
        self._url = url  # never logged nor put in a message: it may hold a password
        self._clients: dict[int, redis.Redis] = {}

    def client(self) -> redis.Redis:
        """This process's client, built on first use."""
        pid = os.getpid()
        client = self._clients.get(pid)
        if client is None:
            pool = redis.ConnectionPool.from_url(
                self._url, decode_responses=True,
                socket_connect_timeout=1.0, socket_timeout=1.5,
                health_check_interval=30, retry_on_timeout=False,
                # One immediate retry on a dropped connection (the server restarted); none
                # on timeouts, so an unreachable Redis costs at most one timeout per call.
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            )
            client = redis.Redis(connection_pool=pool)
            self._clients = {pid: client}
        return client

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn any Redis error into StoreUnavailable (503), naming the data, not the server."""
        try:
            yield
        except redis.RedisError as exc:
            name = exc.__class__.__name__
            raise StoreUnavailable(f"The store (Redis) failed: {name}.") from exc

    def close(self) -> None:
        """Disconnect this process's pool; the next call builds a new one."""
        client = self._clients.pop(os.getpid(), None)
        if client is not None:
            client.connection_pool.disconnect()
