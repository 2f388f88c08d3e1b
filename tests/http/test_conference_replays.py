"""Conferences get the legs' replay guards (issue #17, item 7): Twilio's Timestamp and
tombstones. A replay of yesterday's `standup` must not stand between /notify and today's."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from email.utils import formatdate

import pytest

from config.settings import Settings
from sandbox.calls import new_call_sid
from sandbox.conference import new_conference_sid
from tests.support.env import ACCOUNT_SID

RETENTION_S = 1.0
CONF_PATH = "/twilio/conference"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings, with ended conferences (and legs) forgotten after a second."""
    return replace(settings, leg_retention_s=RETENTION_S)


def callback(conf: str, kind: str, seq: int, call_sid: str | None = None,
             stamped: float | None = None) -> dict[str, str]:
    params = {"AccountSid": ACCOUNT_SID, "ConferenceSid": conf, "FriendlyName": "standup",
              "StatusCallbackEvent": kind, "SequenceNumber": str(seq),
              "Timestamp": formatdate(time.time() if stamped is None else stamped,
                                      usegmt=True)}
    if call_sid is not None:
        params["CallSid"] = call_sid
    return params


def send(relay, *callbacks: dict[str, str]) -> None:
    for params in callbacks:
        answer = relay.webhook(CONF_PATH, params)
        assert answer.status_code == 204, answer.data


def sdk_leg(relay, identity: str) -> str:
    """A live leg of a Voice SDK client, as its status callback tells it."""
    sid = new_call_sid()
    answer = relay.webhook("/twilio/status", {
        "AccountSid": ACCOUNT_SID, "CallSid": sid, "CallStatus": "in-progress",
        "From": f"client:{identity}", "To": "conference:standup", "Direction": "inbound"})
    assert answer.status_code == 204
    return sid


def test_a_replay_of_a_forgotten_conference_does_not_revive_it(relay, twilio):
    yesterday, old_leg = new_conference_sid(), new_call_sid()
    replayed = [callback(yesterday, "conference-start", 1),
                callback(yesterday, "participant-join", 2, old_leg)]
    send(relay, *replayed, callback(yesterday, "conference-end", 3))
    time.sleep(RETENTION_S + 0.2)  # yesterday's standup is forgotten
    assert relay.get(f"/conferences/{yesterday}").status_code == 404

    today, alice = new_conference_sid(), sdk_leg(relay, "alice")
    send(relay, callback(today, "conference-start", 1),
         callback(today, "participant-join", 2, alice))
    send(relay, *replayed)  # signed by Twilio, so acknowledged: recorded nowhere
    assert relay.get(f"/conferences/{yesterday}").status_code == 404
    assert relay.get("/conferences/standup").json["conference_sid"] == today

    answer = relay.notify({"conference": "standup", "content": {"agenda": 1}})
    assert answer.status_code == 201, answer.json  # was 409: yesterday's, revived, was found
    assert [m.call_sid for m in twilio.messages] == [alice]


def test_a_conference_callback_stamped_long_ago_is_acknowledged_and_ignored(relay, twilio,
                                                                           caplog):
    caplog.set_level(logging.WARNING, logger="callrelay.webhooks")
    today, alice = new_conference_sid(), sdk_leg(relay, "alice")
    send(relay, callback(today, "participant-join", 2, alice))
    yesterday = new_conference_sid()  # gone for a day: this store never saw it, or forgot it
    day_ago = time.time() - 24 * 3600
    send(relay, callback(yesterday, "conference-start", 1, stamped=day_ago),
         callback(yesterday, "participant-join", 2, new_call_sid(), stamped=day_ago))
    assert relay.get(f"/conferences/{yesterday}").status_code == 404
    assert relay.notify({"conference": "standup", "content": {}}).status_code == 201
    assert [m.call_sid for m in twilio.messages] == [alice]
    lines = [r for r in caplog.records if "stale conference callback" in r.getMessage()]
    assert [line.conference_sid for line in lines] == [yesterday, yesterday]
