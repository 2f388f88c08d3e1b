"""create_app's injection points: the in-memory store and the fake Twilio, behind the real routes.

Webhooks are signed as Twilio signs them and /notify carries a bearer token: nothing is switched
off. Only what is behind the ports is fake, so the assertions read what the fakes recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from app import create_app
from config.settings import Settings
from sandbox.calls import phone_calls_sdk
from services.errors import TwilioUnavailable
from services.forwarding.delivery import DeliveryOptions
from services.forwarding.service import ForwardingOptions
from services.forwarding.subscriptions import SubscriptionOptions
from services.legs.rules import Retention
from services.store.open import Stores
from services.store.sqlite.conferences import SQLiteConferenceStore
from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.outbox import SQLiteOutbox
from tests.support.clock import FakeClock
from tests.support.fake_twilio import ACCOUNT_SID, FakeTwilio
from tests.support.memory_store import MemoryLegStore

AUTH_TOKEN = "fake-auth-token-not-a-secret"
RELAY_TOKEN = "relay-token-for-the-fakes-0123"
PUBLIC_BASE = "https://relay.example.com"
FAST = ForwardingOptions(delivery=DeliveryOptions(poll_s=0.05),
                         subscription=SubscriptionOptions(attempts=2, delay_s=0.01))


class Wired:
    """An app built by create_app on the fakes, and a client that speaks as Twilio and backend."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.settings = Settings.from_env({
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "RELAY_API_TOKENS": RELAY_TOKEN, "PUBLIC_BASE_URL": PUBLIC_BASE,
            "STORE_URL": f"sqlite:///{tmp_path}/unused.sqlite3", **env})
        self.legs = MemoryLegStore(clock=FakeClock())
        self.twilio = FakeTwilio()
        db = SQLiteDatabase(str(tmp_path / "outbox.sqlite3"))
        stores = Stores(self.legs, SQLiteOutbox(db), SQLiteConferenceStore(db, Retention()))
        self.app: Flask = create_app(self.settings, store=stores,
                                     twilio=self.twilio, forwarding=FAST)
        self.client = self.app.test_client()

    def webhook(self, path: str, params: dict[str, str]) -> TestResponse:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_BASE + path, params)
        return self.client.post(path, data=params, headers={"X-Twilio-Signature": signature})

    def notify(self, body: Any) -> TestResponse:
        return self.client.post("/notify", data=json.dumps(body), content_type="application/json",
                                headers={"Authorization": f"Bearer {RELAY_TOKEN}"})

    def close(self) -> None:
        forwarding = self.app.extensions.get("callrelay.forwarding")
        if forwarding is not None:
            forwarding.stop()
        self.app.extensions["callrelay.store"].close()


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[Any]:
    opened: list[Wired] = []

    def build(**env: str) -> Wired:
        opened.append(Wired(tmp_path, **env))
        return opened[-1]

    yield build
    for wired in opened:
        wired.close()


def test_webhooks_fill_the_injected_store_and_notify_uses_the_injected_twilio(wire):
    relay = wire()
    call = phone_calls_sdk(ACCOUNT_SID, identity="bob")
    for step in call.answer:
        assert relay.webhook(step.path, step.params).status_code in (200, 204), step.note
    assert relay.legs.get(call.child_sid) is not None  # the webhooks wrote to the fake store

    answer = relay.notify({"call_sid": call.parent_sid, "content": {"hello": "bob"}})
    assert answer.status_code == 201, answer.json
    [request] = relay.twilio.made("send_message")
    assert (request.call_sid, request.content) == (call.child_sid, '{"hello":"bob"}')
    [sent] = relay.twilio.messages
    message = answer.json["messages"][0]
    assert (message["sid"], message["call_sid"], message["identity"]) == (
        sent.sid, call.child_sid, "bob")
    assert relay.client.get("/readyz").status_code == 200


def test_errors_the_fakes_raise_come_back_as_the_contract_says(wire):
    relay = wire()
    call = phone_calls_sdk(ACCOUNT_SID)
    for step in call.answer:
        relay.webhook(step.path, step.params)
    relay.twilio.fail("send_message", TwilioUnavailable("Twilio is down.", retry_after_s=7))
    answer = relay.notify({"identity": call.identity, "content": {}})
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "7")
    assert answer.json["error"]["code"] == "twilio_unavailable"
    relay.legs.unavailable = True
    assert relay.client.get("/readyz").status_code == 503


def test_the_subscriber_uses_the_injected_twilio(wire):
    secret = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    relay = wire(FORWARD_URL="http://127.0.0.1:9/hooks", FORWARD_SECRET=secret)
    call = phone_calls_sdk(ACCOUNT_SID)
    for step in call.answer:
        relay.webhook(step.path, step.params)
    subscriber = relay.app.extensions["callrelay.forwarding"].subscriber
    assert subscriber.wait_idle(5)
    [request] = relay.twilio.made("subscribe")
    assert (request.call_sid, request.callback_url) == (call.sdk_sid,
                                                        f"{PUBLIC_BASE}/twilio/messages")
