"""/notify to several legs at once: every leg is tried, and each leg keeps its own key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from app import create_app
from config.settings import Settings
from sandbox.calls import Call, Step, phone_calls_sdk, sdk_calls_phone
from services.legs.rules import Retention
from services.store.open import Stores
from services.store.redis.conferences import RedisConferenceStore
from services.store.redis.database import RedisDatabase
from services.store.redis.legs import RedisStore
from services.store.redis.outbox import RedisOutbox
from tests.store.support import delete_prefix, unique_prefix
from tests.support.env import ACCOUNT_SID
from tests.support.redis_server import redis_url
from tests.support.relay import Relay


def two_calls(relay: Relay, identity: str = "erin") -> tuple[Call, Call]:
    """`identity` on two live calls: it called a phone, and a phone called it."""
    out = relay.answered(sdk_calls_phone(ACCOUNT_SID, identity=identity))
    inc = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity=identity))
    return out, inc


def keys_by_leg(twilio: Any) -> dict[str, set[str]]:
    """The IdempotencyKey(s) each leg's UserDefinedMessages requests carried."""
    found: dict[str, set[str]] = {}
    for r in twilio.requests:
        if r.path.endswith("/UserDefinedMessages.json"):
            found.setdefault(r.path.split("/")[-2], set()).add(r.form.get("IdempotencyKey"))
    return found


def test_one_leg_refused_the_other_still_gets_its_message(relay, twilio):
    out, inc = two_calls(relay)
    twilio.set_call(out.sdk_sid, "completed")  # that call just ended at Twilio: 400 / 21220
    answer = relay.notify({"identity": "erin", "content": {"n": 1}})
    assert answer.status_code == 201, answer.json
    assert [m.call_sid for m in twilio.messages] == [inc.sdk_sid]
    assert [m["call_sid"] for m in answer.json["messages"]] == [inc.sdk_sid]
    (failed,) = answer.json["failed"]
    assert failed["call_sid"] == out.sdk_sid and failed["leg"] == "parent"
    assert failed["identity"] == "erin"
    error = failed["error"]
    assert (error["code"], error["twilio_status"], error["twilio_code"]) == (
        "twilio_refused", 400, 21220)
    assert error["message"]


def test_every_leg_failing_answers_with_the_failure(relay, twilio):
    out, inc = two_calls(relay)
    twilio.fail_next(100_000, status=503, code=20503)
    answer = relay.notify({"identity": "erin", "content": {}})
    assert answer.status_code == 503, answer.json
    assert answer.json["error"]["code"] == "twilio_unavailable"
    assert int(answer.headers["Retry-After"]) > 0
    assert "failed" not in answer.json and twilio.messages == []
    # Both legs were tried, not only the first.
    assert set(keys_by_leg(twilio)) == {out.sdk_sid, inc.sdk_sid}


def test_every_leg_refused_is_502(relay, twilio):
    out, inc = two_calls(relay)
    twilio.set_call(out.sdk_sid, "completed")
    twilio.set_call(inc.sdk_sid, "completed")
    answer = relay.notify({"identity": "erin", "content": {}})
    assert answer.status_code == 502 and answer.json["error"]["twilio_code"] == 21220
    assert set(keys_by_leg(twilio)) == {out.sdk_sid, inc.sdk_sid}


def test_without_failures_there_is_no_failed_field(relay, twilio):
    two_calls(relay)
    answer = relay.notify({"identity": "erin", "content": {}})
    assert answer.status_code == 201 and len(answer.json["messages"]) == 2
    assert "failed" not in answer.json


# --- idempotency: the same key always goes to the same leg, whatever order the store returns ---

def redis_stores(prefix: str) -> Stores:
    db = RedisDatabase(redis_url())
    return Stores(RedisStore(db, Retention(), prefix=prefix), RedisOutbox(db, prefix=prefix),
                  RedisConferenceStore(db, Retention(), prefix=prefix))


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def any_store_relay(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Relay]:
    """A relay on the SQLite file of `settings`, or on a private prefix of the test Redis."""
    prefix = unique_prefix()
    stores = redis_stores(prefix) if request.param == "redis" else None
    app: Flask = create_app(settings, store=stores)
    yield Relay(app.test_client())
    app.extensions["callrelay.store"].close()
    if request.param == "redis":
        client = redis.Redis.from_url(redis_url(), decode_responses=True)
        delete_prefix(client, prefix)
        client.close()


def answer_sdk_parent(relay: Relay, call: Call) -> None:
    """The outgoing call's SDK leg reports in-progress: the leg is updated (and re-indexed)."""
    voice = call.answer[0].params
    relay.play([Step("/twilio/status", {
        **voice, "CallStatus": "in-progress", "SequenceNumber": "0",
        "CallbackSource": "call-progress-events"}, "the SDK leg is answered")])


def test_a_retry_sends_each_leg_the_same_key_as_before(any_store_relay, twilio):
    relay = any_store_relay
    out, inc = two_calls(relay)
    body = {"identity": "erin", "content": {"order": 7}, "idempotency_key": "order-7"}
    first = relay.notify(body)
    assert first.status_code == 201, first.json
    answer_sdk_parent(relay, out)  # the legs' order in the store may change now
    second = relay.notify(body)
    assert second.status_code == 201, second.json
    # Twilio de-duplicated the retry: one message per leg...
    assert sorted(m.call_sid for m in twilio.messages) == sorted([out.sdk_sid, inc.sdk_sid])
    # ...because each leg got one key, derived from the caller's key and that leg, both times.
    assert keys_by_leg(twilio) == {sid: {f"order-7:{sid}"} for sid in (out.sdk_sid,
                                                                        inc.sdk_sid)}

    def sids(answer: Any) -> dict[str, str]:
        return {m["call_sid"]: m["sid"] for m in answer.json["messages"]}
    assert sids(first) == sids(second)


def test_a_single_call_sid_target_passes_the_key_unchanged(relay, twilio):
    out, _ = two_calls(relay)
    answer = relay.notify({"call_sid": out.sdk_sid, "content": {}, "idempotency_key": "k-1"})
    assert answer.status_code == 201
    assert keys_by_leg(twilio) == {out.sdk_sid: {"k-1"}}


def test_a_long_key_stays_within_the_limit_and_stable(relay, twilio):
    two_calls(relay)
    body = {"identity": "erin", "content": {}, "idempotency_key": "k" * 255}
    assert relay.notify(body).status_code == 201
    assert relay.notify(body).status_code == 201
    keys = keys_by_leg(twilio)
    assert len(keys) == 2 and all(len(k) == 1 for k in keys.values())
    assert all(len(key) <= 255 for ks in keys.values() for key in ks)
    assert len({key for ks in keys.values() for key in ks}) == 2
    assert len(twilio.messages) == 2
