"""Fixtures for forwarding: a backend on a real port, and apps that forward to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from config.settings import Settings
from sandbox.twilio_mock import TwilioMock
from services.forwarding.service import ForwardingOptions
from tests.forwarding.support import FAST, SECRET, AppFactory, Backend, stop_app
from tests.support.env import make_env
from tests.support.relay import Relay


@pytest.fixture
def backend() -> Iterator[Backend]:
    server = Backend()
    yield server
    server.stop()


@pytest.fixture
def make_app(tmp_path: Path, twilio: TwilioMock, backend: Backend) -> Iterator[AppFactory]:
    """Apps forwarding to `backend`, all on one SQLite file (like workers, or restarts)."""
    apps: list[Flask] = []

    def factory(options: ForwardingOptions = FAST, **overrides: str) -> Flask:
        env = make_env(tmp_path, twilio, **{"FORWARD_URL": backend.url,
                                            "FORWARD_SECRET": SECRET, **overrides})
        app = create_app(Settings.from_env(env), forwarding=options)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        stop_app(app)


@pytest.fixture
def fwd_app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def fwd(fwd_app: Flask) -> Relay:
    """A relay (signed webhooks, bearer token) on an app that forwards to `backend`."""
    return Relay(fwd_app.test_client())
