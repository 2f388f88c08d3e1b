"""The app on a PostgreSQL store, as DATABASE_URL hands it: webhooks, /notify, /readyz."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from app import create_app
from config.settings import Settings
from sandbox.calls import phone_calls_sdk
from sandbox.devtools import free_port
from sandbox.twilio_mock import TwilioMock
from tests.support.env import ACCOUNT_SID, make_env
from tests.support.postgres_server import temporary_schema
from tests.support.relay import Relay

pytestmark = pytest.mark.postgres


def postgres_app(tmp_path: Any, twilio: TwilioMock, database_url: str) -> Flask:
    env = make_env(tmp_path, twilio, DATABASE_URL=database_url)
    del env["STORE_URL"]  # as on Heroku and Render: only DATABASE_URL is set
    return create_app(Settings.from_env(env))


@pytest.fixture
def app_on(tmp_path: Any, twilio: TwilioMock) -> Iterator[Any]:
    apps: list[Flask] = []

    def build(database_url: str) -> Relay:
        app = postgres_app(tmp_path, twilio, database_url)
        apps.append(app)
        return Relay(app.test_client())

    yield build
    for app in apps:
        app.extensions["callrelay.store"].close()


def test_webhooks_and_notify_on_database_url(app_on: Any, twilio: TwilioMock,
                                             postgres_database: str) -> None:
    with temporary_schema(postgres_database) as url:
        relay = app_on(url)
        assert relay.client.get("/readyz").json == {"status": "ready"}
        call = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity="bob"))
        answer = relay.notify({"identity": "bob", "content": {"hello": "bob"}})
        assert answer.status_code == 201, answer.json
        assert [m.call_sid for m in twilio.messages] == [call.child_sid]
        # A second app on the same database (another worker, another instance) sees the call.
        other = app_on(url)
        legs = other.get(f"/calls/{call.parent_sid}").json["legs"]
        assert {leg["call_sid"]: leg["identity"] for leg in legs} == {
            call.parent_sid: None, call.child_sid: "bob"}


def test_an_unreachable_database_answers_503_and_health_stays_up(app_on: Any) -> None:
    relay = app_on(f"postgres://callrelay:s3cret-pw@127.0.0.1:{free_port()}/gone")
    ready = relay.client.get("/readyz")
    call = phone_calls_sdk(ACCOUNT_SID)
    hook = relay.webhook(call.answer[1].path, call.answer[1].params)
    for answer in (ready, hook):
        assert answer.status_code == 503, answer.data
        assert answer.json["error"]["code"] == "store_unavailable"
        assert answer.headers["Retry-After"] == "2"
        assert b"s3cret-pw" not in answer.data
    assert relay.client.get("/healthz").status_code == 200
