"""REDIS_MIN_REPLICAS: a callback whose write too few replicas acknowledged is answered 503
(Twilio retries it), counted in /metrics and logged; with the replicas there, 204."""

from __future__ import annotations

import pytest

from app import create_app
from config.settings import Settings
from sandbox.calls import phone_calls_sdk
from tests.http.test_metrics import scrape, value
from tests.support.env import ACCOUNT_SID, make_env
from tests.support.redis_server import redis_server
from tests.support.redis_topologies import LocalSentinel
from tests.support.relay import Relay

pytestmark = pytest.mark.redis


def test_a_callback_no_replica_acknowledged_is_answered_503(tmp_path, twilio, caplog):
    with redis_server() as alone:  # a primary without replicas: WAIT never reaches 1
        app = create_app(Settings.from_env(make_env(
            tmp_path, twilio, STORE_URL=alone.url, REDIS_MIN_REPLICAS="1")))
        try:
            client = app.test_client()
            call = phone_calls_sdk(ACCOUNT_SID, identity="bob")
            answer = Relay(client).webhook(call.answer[0].path, call.answer[0].params)
            assert answer.status_code == 503
            assert answer.json["error"]["code"] == "store_unavailable"
            assert answer.headers["Retry-After"]
            assert value(scrape(client), "callrelay_store_unreplicated_writes_total") == 1
            assert "a write reached 0 of the 1 replicas REDIS_MIN_REPLICAS asks for" \
                in caplog.text
        finally:
            app.extensions["callrelay.store"].close()


def test_callbacks_are_acknowledged_once_a_replica_has_them(tmp_path, twilio,
                                                            redis_sentinel: LocalSentinel):
    app = create_app(Settings.from_env(make_env(
        tmp_path, twilio, STORE_URL=redis_sentinel.url, REDIS_SENTINELS=redis_sentinel.addresses,
        REDIS_SENTINEL_MASTER=redis_sentinel.MASTER, REDIS_MIN_REPLICAS="1")))
    try:
        relay = Relay(app.test_client())
        call = phone_calls_sdk(ACCOUNT_SID, identity="bob")
        relay.play(call.answer)
        assert relay.get(f"/calls/{call.parent_sid}").status_code == 200
        assert value(scrape(app.test_client()),
                     "callrelay_store_unreplicated_writes_total") == 0
    finally:
        app.extensions["callrelay.store"].close()
