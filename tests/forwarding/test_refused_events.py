"""An event the backend refuses holds its call's later events for one backoff, no longer.

The forwarder runs step by step (run_once) on a fake clock, against a real backend and a SQLite
outbox on disk: what waits, and for how long, is exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from services.forwarding.delivery import Backoff, DeliveryOptions, Forwarder
from services.store.outbox import OutboxEvent
from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.outbox import SQLiteOutbox
from tests.forwarding.support import SECRET, Backend
from tests.support.clock import FakeClock

# The default timings: the first backoff is 5 to 10 s, the second 10 to 20 s.
OPTIONS = DeliveryOptions(backoff=Backoff(base_s=10.0, cap_s=1200.0), max_attempts=4)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbox(tmp_path: Path, clock: FakeClock) -> Iterator[SQLiteOutbox]:
    box = SQLiteOutbox(SQLiteDatabase(str(tmp_path / "outbox.sqlite3")), clock)
    yield box
    box.close()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def queue(outbox: SQLiteOutbox, *names: str) -> None:
    for name in names:
        outbox.enqueue(OutboxEvent(id=name, stream="CA1", body=f'{{"name":"{name}"}}'))


def attempts(backend: Backend) -> list[tuple[str, int]]:
    return [(d.id, d.status) for d in backend.deliveries]


@pytest.mark.parametrize("refusal", [400, 404, 410, 422])
def test_a_refused_event_is_set_aside_after_one_backoff_and_the_call_goes_on(
        outbox, clock, backend, session, refusal):
    backend.answer = lambda d: refusal if d.id == "poison" else 204
    forwarder = Forwarder(outbox, backend.url, SECRET, OPTIONS, clock=clock)
    queue(outbox, "poison", "next", "last")
    assert forwarder.run_once(session) == 1
    assert forwarder.run_once(session) == 0  # "next" waits behind the refused event...
    clock.advance(10)  # ...for one backoff
    assert forwarder.run_once(session) == 1  # refused again: set aside
    assert forwarder.run_once(session) == 1
    assert forwarder.run_once(session) == 1
    assert attempts(backend) == [("poison", refusal), ("poison", refusal), ("next", 204),
                                 ("last", 204)]
    assert forwarder.run_once(session) == 0
    clock.advance(20)
    assert forwarder.run_once(session) == 1  # the set-aside event is still retried
    clock.advance(40)
    assert forwarder.run_once(session) == 1
    assert attempts(backend)[4:] == [("poison", refusal), ("poison", refusal)]
    [dead] = outbox.dead()
    assert (dead.id, dead.attempts, dead.last_error) == ("poison", 4, f"HTTP {refusal}")


@pytest.mark.parametrize("failure", [500, 503, 408, 429])
def test_a_backend_that_is_down_holds_the_call_in_order(outbox, clock, backend, session,
                                                        failure):
    answers = iter([failure, failure, failure])
    backend.answer = lambda d: next(answers, 204)
    forwarder = Forwarder(outbox, backend.url, SECRET, OPTIONS, clock=clock)
    queue(outbox, "first", "second")
    for wait in (0, 10, 20):
        clock.advance(wait)
        assert forwarder.run_once(session) == 1
        assert forwarder.run_once(session) == 0  # "second" waits: the backend is down
    clock.advance(40)
    assert forwarder.run_once(session) == 1
    assert forwarder.run_once(session) == 1
    assert attempts(backend) == [("first", failure)] * 3 + [("first", 204), ("second", 204)]
