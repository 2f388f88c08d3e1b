"""Shared fixtures: settings, a Twilio mock on a real port, the app, and signed webhooks.

Fixtures only: the helpers they use live in tests/support/, which tests import directly.
"""

from __future__ import annotations

from collections.abc import Iterator
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
