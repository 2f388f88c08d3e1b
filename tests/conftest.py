"""Shared fixtures: settings, a Twilio mock on a real port, the app, and signed webhooks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from app import create_app
from config.settings import Settings
from sandbox.calls import Call, Step
from sandbox.twilio_mock import TwilioMock

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "test-auth-token-not-a-secret"
RELAY_TOKEN = "relay-token-0123456789abcdef"
OLD_RELAY_TOKEN = "relay-token-rotating-out-0000"
PUBLIC_BASE = "https://relay.example.com"


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send for a form POST to `url`."""
    return RequestValidator(token).compute_signature(url, params)


@pytest.fixture(scope="session")
def twilio_server() -> Iterator[TwilioMock]:
    with TwilioMock(ACCOUNT_SID, {ACCOUNT_SID: AUTH_TOKEN}).start() as mock:
        yield mock


@pytest.fixture
def twilio(twilio_server: TwilioMock) -> TwilioMock:
    """The Twilio mock, emptied for each test."""
    twilio_server.reset()
    return twilio_server


def make_env(tmp_path: Any, twilio: TwilioMock, **overrides: str) -> dict[str, str]:
    """Environment variables for a callrelay wired to the mock and a fresh SQLite file."""
    env = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "RELAY_API_TOKENS": f"{RELAY_TOKEN},{OLD_RELAY_TOKEN}",
        "TWILIO_API_BASE_URL": twilio.base_url,
        "PUBLIC_BASE_URL": PUBLIC_BASE,
        "STORE_URL": f"sqlite:///{tmp_path}/callrelay.sqlite3",
        "TWILIO_CALLER_ID": "+15005550001",
        "INBOUND_CLIENT_IDENTITY": "bob",
        "TWILIO_TIMEOUT_S": "2",
        "NOTIFY_DEADLINE_S": "4",
    }
    env.update(overrides)
    return env


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


class Relay:
    """A test client that speaks as Twilio (signed webhooks) and as a backend (bearer token)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def webhook(self, path: str, params: dict[str, str], *,
                signature: str | None = None) -> TestResponse:
        sig = sign(PUBLIC_BASE + path, params) if signature is None else signature
        return self.client.post(path, data=params, headers={"X-Twilio-Signature": sig})

    def play(self, steps: list[Step]) -> None:
        for step in steps:
            answer = self.webhook(step.path, step.params)
            assert answer.status_code in (200, 204), (step.note, answer.status_code, answer.data)

    def notify(self, body: Any, token: str = RELAY_TOKEN) -> TestResponse:
        # Serialised here, not by Flask's test client (which sorts keys), as a backend would.
        return self.client.post("/notify", data=json.dumps(body), content_type="application/json",
                                headers={"Authorization": f"Bearer {token}"})

    def get(self, path: str, token: str = RELAY_TOKEN) -> TestResponse:
        return self.client.get(path, headers={"Authorization": f"Bearer {token}"})

    def answered(self, call: Call) -> Call:
        self.play(call.answer)
        return call


@pytest.fixture
def relay(client: FlaskClient) -> Relay:
    return Relay(client)
