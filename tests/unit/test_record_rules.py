"""record_status and record_conference: what is recorded, who is told, what is logged, by hand.

Which callback times a call's history out (the one that ends the parent, not a child's end nor
a later duplicate), what a stale callback logs, and that a conference callback is recorded
unless Twilio stamped it too long ago.
"""

from __future__ import annotations

import logging
from email.utils import formatdate

import pytest

from services.legs.conferences import Conference, ConferenceEvent
from services.legs.model import Leg, LegEvent
from services.legs.rules import Retention
from services.use_cases.record_conference import RecordedConference, record_conference
from services.use_cases.record_status import Recorded, record_status
from tests.support.clock import FakeClock
from tests.support.memory_store import MemoryLegStore

NOW = 1_893_492_000.0
PARENT = "CA" + "1" * 32
CHILD = "CA" + "2" * 32
CF = "CF" + "c" * 32
URL = "https://relay.example.com/twilio/messages"


class Ended:
    """Stands in for CallHistory: the legs whose end timed their call's history out."""

    def __init__(self) -> None:
        self.legs: list[Leg] = []

    def call_ended(self, leg: Leg) -> None:
        self.legs.append(leg)


class Told:
    """Stands in for Forwarding."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str, str]] = []

    def leg_recorded(self, event: LegEvent, leg: Leg, callback_url: str) -> None:
        self.told.append((event.status, leg.status, callback_url))


def params(sid: str, status: str, *, parent: str | None = None,
           stamped: float | None = None) -> dict[str, str]:
    given = {"CallSid": sid, "CallStatus": status, "From": "client:alice", "To": "+15005550006"}
    if parent is not None:
        given["ParentCallSid"] = parent
    if stamped is not None:
        given["Timestamp"] = formatdate(stamped, usegmt=True)
    return given


@pytest.fixture
def store() -> MemoryLegStore:
    return MemoryLegStore(clock=FakeClock(NOW))


def play(store, history, *callbacks: dict[str, str]) -> list[Recorded]:
    return [record_status(store, None, p, URL, Retention(), now=NOW, history=history)
            for p in callbacks]


@pytest.mark.parametrize(("callbacks", "ended"), [
    ([params(PARENT, "ringing"), params(PARENT, "completed")], ["completed"]),
    ([params(PARENT, "in-progress"), params(PARENT, "busy")], ["busy"]),
    # A later callback with another terminal status does not time it out again.
    ([params(PARENT, "completed"), params(PARENT, "failed"), params(PARENT, "busy")],
     ["completed"]),
    # A child's end is not the call's.
    ([params(CHILD, "completed", parent=PARENT)], []),
    ([params(PARENT, "in-progress"), params(PARENT, "ringing")], []),
])
def test_the_callback_that_ends_the_parent_times_the_history_out(store, callbacks, ended):
    history = Ended()
    play(store, history, *callbacks)
    assert [leg.status for leg in history.legs] == ended
    assert all(leg.call_sid == PARENT for leg in history.legs)


def test_a_voice_request_is_read_as_a_parent_leg(store):
    voice = {**params(PARENT, "ringing", parent=CHILD), "Direction": "inbound"}
    recorded = record_status(store, None, voice, URL, Retention(), now=NOW, voice_request=True)
    assert recorded.leg is not None and recorded.leg.parent_sid is None
    assert recorded.leg.identity == "alice"
    # The same parameters as a status callback describe a child leg.
    recorded = record_status(store, None, {**voice, "CallSid": "CA" + "3" * 32}, URL,
                             Retention(), now=NOW)
    assert recorded.leg is not None and recorded.leg.parent_sid == CHILD


def test_a_repeated_end_times_the_history_out_from_the_same_end(store):
    history = Ended()
    store.clock.advance(5.0)
    play(store, history, params(PARENT, "completed"))
    store.clock.advance(30.0)
    play(store, history, params(PARENT, "completed"))
    assert [leg.ended_at for leg in history.legs] == [NOW + 5.0, NOW + 5.0]


def test_forwarding_is_told_with_the_messages_url(store):
    told = Told()
    record_status(store, told, params(PARENT, "ringing"), URL, Retention(), now=NOW)
    assert told.told == [("ringing", "ringing", URL)]


def test_a_stale_callback_is_logged_with_its_age_and_records_nothing(store, caplog):
    told, history = Told(), Ended()
    old = params(PARENT, "completed", stamped=NOW - 7200)
    with caplog.at_level(logging.WARNING, logger="callrelay.webhooks"):
        recorded = record_status(store, told, old, URL, Retention(), now=NOW, history=history)
    assert recorded == Recorded(LegEvent.from_params(old), None)
    assert store.get(PARENT) is None and told.told == [] and history.legs == []
    [line] = caplog.records
    assert line.getMessage() == "stale callback ignored: Twilio stamped it too long ago"
    assert (line.call_sid, line.reported, line.age_s) == (PARENT, "completed", 7200)


def test_a_forgotten_leg_tells_no_one_and_ends_no_history(store):
    told, history = Told(), Ended()
    forgetting = MemoryLegStore(retention=Retention(leg_retention_s=0.0), clock=FakeClock(NOW))
    record_status(forgetting, told, params(PARENT, "completed"), URL, Retention(), now=NOW,
                  history=history)
    assert len(told.told) == 1 and len(history.legs) == 1
    recorded = record_status(forgetting, told, params(PARENT, "completed"), URL, Retention(),
                             now=NOW, history=history)
    assert recorded.leg is not None and recorded.leg.forgotten
    assert len(told.told) == 1 and len(history.legs) == 1


def test_without_a_time_the_clock_decides_what_is_stale(store):
    import time

    fresh = params(PARENT, "ringing", stamped=time.time() - 60)
    assert record_status(store, None, fresh, URL, Retention()).leg is not None


# --- conferences -----------------------------------------------------------------------------

class Conferences:
    """Stands in for the conference store: folds what it is given, as the real ones do."""

    def __init__(self) -> None:
        self.applied: list[ConferenceEvent] = []

    def apply(self, event: ConferenceEvent) -> Conference:
        self.applied.append(event)
        return Conference(sid=event.conference_sid, friendly_name=event.friendly_name)


def conference_params(stamped: float | None = None) -> dict[str, str]:
    given = {"ConferenceSid": CF, "StatusCallbackEvent": "conference-start",
             "FriendlyName": "standup"}
    if stamped is not None:
        given["Timestamp"] = formatdate(stamped, usegmt=True)
    return given


def test_a_conference_callback_is_recorded():
    conferences = Conferences()
    recorded = record_conference(conferences, conference_params(NOW - 60), Retention(), now=NOW)
    event = ConferenceEvent.from_params(conference_params(NOW - 60))
    assert recorded == RecordedConference(event, Conference(sid=CF, friendly_name="standup"))
    assert conferences.applied == [event]


def test_a_stale_conference_callback_is_logged_and_records_nothing(caplog):
    conferences = Conferences()
    with caplog.at_level(logging.WARNING, logger="callrelay.webhooks"):
        recorded = record_conference(conferences, conference_params(NOW - 3601), Retention(),
                                     now=NOW)
    assert recorded.conference is None and conferences.applied == []
    [line] = caplog.records
    assert line.getMessage() == ("stale conference callback ignored: Twilio stamped it too "
                                 "long ago")
    assert (line.conference_sid, line.reported, line.age_s) == (CF, "conference-start", 3601)


def test_a_conference_callback_an_hour_old_is_still_news():
    conferences = Conferences()
    recorded = record_conference(conferences, conference_params(NOW - 3600), Retention(),
                                 now=NOW)
    assert recorded.conference is not None


def test_a_conference_callback_without_a_time_uses_the_clock():
    import time

    conferences = Conferences()
    recorded = record_conference(conferences, conference_params(time.time() - 60), Retention())
    assert recorded.conference is not None
