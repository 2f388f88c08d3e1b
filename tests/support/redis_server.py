"""Finding (or starting) a real Redis server for tests; skips cleanly when there is none."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from sandbox.devtools import free_port

DEFAULT_URL = "redis://127.0.0.1:6379/15"


def _required() -> bool:
    return os.environ.get("CALLRELAY_REQUIRE_REDIS") == "1"


def _unavailable(reason: str) -> None:
    """Skip the test, or fail it when CALLRELAY_REQUIRE_REDIS=1 (CI must not skip silently)."""
    if _required():
        pytest.fail(f"{reason} (CALLRELAY_REQUIRE_REDIS=1)")
    pytest.skip(reason)


def redis_url() -> str:
    """The test Redis URL, once it answers PING; otherwise skip (or fail when required)."""
    url = os.environ.get("CALLRELAY_TEST_REDIS_URL", DEFAULT_URL)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError:
        shown = url.split("@")[-1]  # never print a password
        _unavailable(f"no Redis server at {shown}: set CALLRELAY_TEST_REDIS_URL "
                     "or start redis-server")
    return url


class RedisServer:
    """A throwaway `redis-server` subprocess on a fixed port, without persistence."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable("redis-server is not on PATH")
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"redis-server did not start on {self.port}") \
                            from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Kill the server (no clean shutdown: this is an outage) and wait for it."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextlib.contextmanager
def redis_server(port: int | None = None) -> Iterator[RedisServer]:
    """A redis-server subprocess for the duration of the block."""
    server = RedisServer(port or free_port()).start()
    try:
        yield server
    finally:
        server.stop()
