"""The record_status use case against replays: stale callbacks and tombstoned legs are no news."""

from __future__ import annotations

from email.utils import formatdate

from services.legs.model import Leg, LegEvent
from services.legs.rules import Retention
from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.legs import SQLiteStore
from services.use_cases.record_status import record_status

LEG = "CA" + "4" * 32
START = 1_764_072_000.0
RETENTION = Retention(leg_retention_s=60, max_call_duration_s=600)
URL = "https://relay.example.com/twilio/messages"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class ForwardingLog:
    """Stands in for Forwarding: records what it was told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []

    def leg_recorded(self, event: LegEvent, leg: Leg, callback_url: str) -> None:
        self.told.append((event.status, leg.status))


def params(status: str, stamped: float | None = None) -> dict[str, str]:
    given = {"CallSid": LEG, "CallStatus": status, "To": "client:bob",
             "ParentCallSid": "CA" + "5" * 32, "Direction": "outbound-dial"}
    if stamped is not None:
        given["Timestamp"] = formatdate(stamped, usegmt=True)
    return given


def setup(tmp_path) -> tuple[SQLiteStore, Clock, ForwardingLog]:
    clock = Clock()
    return SQLiteStore(SQLiteDatabase(str(tmp_path / "legs.sqlite3")), RETENTION, clock), \
        clock, ForwardingLog()


def test_a_stale_callback_records_nothing_and_tells_no_one(tmp_path):
    store, _, forwarding = setup(tmp_path)
    recorded = record_status(store, forwarding, params("in-progress", START), URL,
                             RETENTION, now=START + 901)
    assert recorded.leg is None and recorded.event.timestamp == START
    assert store.get(LEG) is None and forwarding.told == []
    # Fresh enough (a retry 15 minutes late): recorded.
    recorded = record_status(store, forwarding, params("in-progress", START), URL,
                             RETENTION, now=START + 900)
    assert recorded.leg is not None and recorded.leg.is_live
    assert forwarding.told == [("in-progress", "in-progress")]


def test_a_forgotten_leg_answered_from_its_tombstone_is_not_forwarded(tmp_path):
    store, clock, forwarding = setup(tmp_path)
    for status in ("ringing", "in-progress", "completed"):
        record_status(store, forwarding, params(status), URL, RETENTION, now=clock())
    clock.now += 59
    record_status(store, forwarding, params("completed"), URL, RETENTION, now=clock())
    assert len(forwarding.told) == 4  # while retained, as before (the outbox dedupes)
    clock.now += 2
    recorded = record_status(store, forwarding, params("completed"), URL, RETENTION,
                             now=clock())
    assert recorded.leg is not None and recorded.leg.status == "completed"
    assert len(forwarding.told) == 4 and store.get(LEG) is None
