"""The message-history contract, run against every adapter (SQLite file, real Redis, memory)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from services.legs.rules import Retention
from services.store.history import MAX_ENTRIES, HistoryEntry

if TYPE_CHECKING:
    from tests.store.support import StoreFactory
    from tests.support.clock import FakeClock

# History is kept 60 s after the call ends, or 600 + 60 s after the last entry without an end.
RETENTION = Retention(leg_retention_s=60, max_call_duration_s=600)
T0 = 1_700_000_000.0  # FakeClock's start


def ca() -> str:
    return "CA" + uuid.uuid4().hex


def kx() -> str:
    return "KX" + uuid.uuid4().hex


def sent(call: str, at: float = T0, **fields: Any) -> HistoryEntry:
    """A /notify delivery Twilio accepted, on the call's parent leg."""
    sid = fields.pop("sid", None) or kx()
    values: dict[str, Any] = {"call_sid": call, "id": sid, "sid": sid, "direction": "to_sdk",
                              "leg_sid": call, "leg": "parent", "identity": "alice", "at": at,
                              "status": "sent", "size": 11, "attempts": 1}
    return HistoryEntry(**{**values, **fields})


def test_entries_come_back_whole_and_oldest_first(make_store: StoreFactory,
                                                  clock: FakeClock) -> None:
    history = make_store.history(RETENTION, clock)
    call, child = ca(), ca()
    delivered = sent(call, T0 + 2, idempotency_key="order-42", content='{"price":42}')
    refused = HistoryEntry(call_sid=call, id="failed-1", direction="to_sdk", leg_sid=child,
                           leg="child", identity="bob", at=T0 + 1, status="failed", size=3,
                           attempts=2, error={"code": "twilio_refused", "twilio_status": 400,
                                              "twilio_code": 21220, "message": "héllo ✓"})
    incoming = HistoryEntry(call_sid=call, id="KX" + "0" * 32, sid="KX" + "0" * 32,
                            direction="from_sdk", leg_sid=child, at=T0 + 3, status="pending",
                            size=7)
    history.add([delivered, refused])
    history.add([incoming])
    assert history.entries(call) == [refused, delivered, incoming]
    assert history.entries(ca()) == []


def test_an_entry_id_already_held_is_not_added_again(make_store: StoreFactory,
                                                      clock: FakeClock) -> None:
    history = make_store.history(RETENTION, clock)
    call = ca()
    first = sent(call, status="pending", direction="from_sdk", attempts=None)
    history.add([first])
    history.update(call, first.id, "forwarded", attempts=1)
    history.add([first])  # Twilio posted the message twice: it stays forwarded
    (only,) = history.entries(call)
    assert (only.id, only.status, only.attempts) == (first.id, "forwarded", 1)


def test_update_sets_status_attempts_and_error(make_store: StoreFactory,
                                               clock: FakeClock) -> None:
    history = make_store.history(RETENTION, clock)
    call = ca()
    entry = sent(call, status="pending", direction="from_sdk", attempts=None)
    history.add([entry])
    assert history.update(call, entry.id, "dead", attempts=10, error={"message": "HTTP 500"})
    (dead,) = history.entries(call)
    assert (dead.status, dead.attempts, dead.error) == ("dead", 10, {"message": "HTTP 500"})
    assert history.update(call, entry.id, "forwarded", attempts=11)
    (forwarded,) = history.entries(call)
    assert (forwarded.status, forwarded.attempts, forwarded.error) == ("forwarded", 11, None)
    assert forwarded.sid == entry.sid and forwarded.at == T0  # the rest is untouched
    assert not history.update(call, kx(), "forwarded", attempts=1)
    assert not history.update(ca(), entry.id, "forwarded", attempts=1)
    assert len(history.entries(call)) == 1


def test_each_call_keeps_its_newest_entries(make_store: StoreFactory, clock: FakeClock) -> None:
    history = make_store.history(RETENTION, clock)
    busy, quiet = ca(), ca()
    # Added newest first: the bound goes by time, not by arrival.
    entries = [sent(busy, T0 + i, sid=f"KX{i:032x}") for i in reversed(range(MAX_ENTRIES + 5))]
    for entry in entries:
        history.add([entry])
    history.add([sent(quiet)])
    kept = history.entries(busy)
    assert len(kept) == MAX_ENTRIES == 200
    assert kept[0].id == f"KX{5:032x}" and kept[-1].id == f"KX{204:032x}"
    assert [e.at for e in kept] == [T0 + i for i in range(5, 205)]
    assert len(history.entries(quiet)) == 1


def test_one_add_may_touch_several_calls(make_store: StoreFactory, clock: FakeClock) -> None:
    history = make_store.history(RETENTION, clock)
    one, two = ca(), ca()
    a, b = sent(one), sent(two)
    history.add([a, b])
    assert history.entries(one) == [a] and history.entries(two) == [b]


def test_a_history_is_kept_its_time_after_the_last_entry(make_store: StoreFactory,
                                                         clock: FakeClock) -> None:
    history = make_store.history(RETENTION, clock)
    call = ca()
    first = sent(call)
    history.add([first])
    clock.advance(300)
    history.add([sent(call, T0 + 300)])
    clock.advance(659)  # 959 s after the first entry, 659 s after the second
    assert len(history.entries(call)) == 2
    clock.advance(2)
    assert history.entries(call) == []
    assert not history.update(call, first.id, "dead", attempts=1)


def test_a_history_goes_retention_after_the_call_ends(make_store: StoreFactory,
                                                      clock: FakeClock) -> None:
    history = make_store.history(RETENTION, clock)
    call = ca()
    history.add([sent(call)])
    clock.advance(100)
    history.call_ended(call, T0 + 90)  # 60 s after the end: T0 + 150
    clock.advance(49)
    assert len(history.entries(call)) == 1
    clock.advance(2)
    assert history.entries(call) == []
    history.call_ended(call, T0 + 200)  # too late: what is gone stays gone
    assert history.entries(call) == []


def test_the_end_of_a_call_without_history_records_nothing(make_store: StoreFactory,
                                                           clock: FakeClock) -> None:
    history = make_store.history(RETENTION, clock)
    call = ca()
    history.call_ended(call, T0)
    assert history.entries(call) == []
    entry = sent(call)
    history.add([entry])
    assert history.entries(call) == [entry]


def test_a_history_past_its_time_starts_afresh(make_store: StoreFactory,
                                               clock: FakeClock) -> None:
    history = make_store.history(RETENTION, clock)
    call = ca()
    old = sent(call)
    history.add([old])
    clock.advance(661)
    new = sent(call, T0 + 661)
    history.add([new])
    assert history.entries(call) == [new]


def test_purge_forgets_only_what_has_gone(make_store: StoreFactory, clock: FakeClock) -> None:
    history = make_store.history(RETENTION, clock)
    gone, kept = ca(), ca()
    history.add([sent(gone), sent(gone, T0 + 1)])
    clock.advance(500)
    history.add([sent(kept, T0 + 500)])
    clock.advance(161)
    purged = history.purge()
    assert isinstance(purged, int) and purged >= 0
    assert history.purge() == 0
    assert history.entries(gone) == [] and len(history.entries(kept)) == 1


def test_a_second_store_on_the_same_database_sees_the_history(make_store: StoreFactory,
                                                              clock: FakeClock) -> None:
    first, second = make_store.history(RETENTION, clock), make_store.history(RETENTION, clock)
    call = ca()
    entry = sent(call, status="pending", direction="from_sdk", attempts=None)
    first.add([entry])
    assert second.update(call, entry.id, "forwarded", attempts=1)
    assert [(e.id, e.status) for e in first.entries(call)] == [(entry.id, "forwarded")]
