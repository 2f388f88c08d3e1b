"""Shared fixtures: settings, a Twilio mock on a real port, the app, and signed webhooks.

Fixtures only: the helpers they use live in tests/support/, which tests import directly.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from config.settings import Settings
from sandbox.twilio_mock import TwilioMock
from tests.support.env import ACCOUNT_SID, AUTH_TOKEN, make_env
from tests.support.postgres_server import temporary_database
from tests.support.redis_topologies import LocalCluster, LocalSentinel
from tests.support.relay import Relay


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--order", choices=("file", "reverse", "random", "layers"),
                     default="file",
                     help="run the tests in file order, reversed, shuffled, or by layer (unit "
                          "tests first: scripts/mutation's mutants then fail fast): every layer "
                          "must pass in one process in any order")
    parser.addoption("--order-seed", type=int, default=None,
                     help="seed of --order random (printed in the header; random by default)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("order") == "random" and config.getoption("order_seed") is None:
        config.option.order_seed = random.randrange(1_000_000)


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.getoption("order") == "random":
        return f"test order: random, --order-seed {config.getoption('order_seed')}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    order = config.getoption("order")
    if order == "reverse":
        items.reverse()
    elif order == "random":
        random.Random(config.getoption("order_seed")).shuffle(items)
    elif order == "layers":
        layers = ("tests/unit/", "tests/http/", "tests/forwarding/")
        items.sort(key=lambda item: next((n for n, layer in enumerate(layers)
                                          if item.nodeid.startswith(layer)), len(layers)))


# Loggers whose level create_app sets (services/observability/logs.py), besides the root.
_CONFIGURED_LOGGERS = ("", "twilio.http_client", "urllib3")


@contextmanager
def _logging_restored() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _CONFIGURED_LOGGERS]
    levels = [logger.level for logger in loggers]
    handlers = list(loggers[0].handlers)
    yield
    root = loggers[0]
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture(autouse=True)
def hermetic_logging() -> Iterator[None]:
    """Logging as it was before each test: create_app configures it process-wide.

    Its stdout handler writes to the sys.stdout of the test that built the first app, and
    LOG_LEVEL sets the root's level: left in place, one test's app would log at its level
    into the stream of another (closed, once pytest ends the run that opened it: the mutation
    tool runs pytest several times in one process).
    """
    with _logging_restored():
        yield


@pytest.fixture(scope="session", autouse=True)
def hermetic_logging_session() -> Iterator[None]:
    """The same for what module-scoped apps configured, at the end of the run."""
    with _logging_restored():
        yield


@pytest.fixture(scope="session")
def twilio_server() -> Iterator[TwilioMock]:
    with TwilioMock(ACCOUNT_SID, {ACCOUNT_SID: AUTH_TOKEN}).start() as mock:
        yield mock


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this test run on the test PostgreSQL server (skips without one); tests
    make schemas of their own in it. Dropped at the end of the run."""
    with temporary_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A Redis Cluster of this test run: three primaries, three replicas (skips without
    redis-server unless CALLRELAY_REQUIRE_REDIS=1)."""
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSentinel]:
    """A primary, its replica and three Sentinels of this test run (skips like the cluster)."""
    sentinel = LocalSentinel(tmp_path_factory.mktemp("redis-sentinel"))
    try:
        yield sentinel.start()
    finally:
        sentinel.stop()


@pytest.fixture
def twilio(twilio_server: TwilioMock) -> TwilioMock:
    """The Twilio mock, emptied for each test."""
    twilio_server.reset()
    return twilio_server


@pytest.fixture
def settings(tmp_path: Any, twilio: TwilioMock) -> Settings:
    return Settings.from_env(make_env(tmp_path, twilio))


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.extensions["callrelay.store"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def relay(client: FlaskClient) -> Relay:
    return Relay(client)
