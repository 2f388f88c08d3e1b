"""Several threads and processes on one registry end where applying the events in order ends."""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from services.legs.model import LegEvent
from services.legs.rules import Retention
from services.store.legs import LegStore
from tests.store.scenario import Scenario, apply_all, check_state, ev, sid
from tests.store.support import StoreFactory, open_spec


def shuffled_chunks(events: list[LegEvent], n: int, seed: int) -> list[list[LegEvent]]:
    """Every event twice, shuffled, dealt to n workers."""
    doubled = events * 2
    random.Random(seed).shuffle(doubled)
    return [doubled[i::n] for i in range(n)]


def lockstep_chunks(n_legs: int, n: int) -> tuple[list[str], list[list[LegEvent]]]:
    """Legs whose attributes arrive one per event, every event once, dealt so that the n
    workers hit the same leg at the same moment: a lost update would show."""
    sids = [sid() for _ in range(n_legs)]
    per_leg = [
        [ev(leg, "queued", from_=f"client:racer{k}"), ev(leg, "queued", to="+15550001111"),
         ev(leg, "queued", direction="inbound"), ev(leg, "queued", account_sid="AC" + "3" * 32),
         ev(leg, "in-progress"), ev(leg, "queued", parent_sid=sids[0] if k else None)]
        for k, leg in enumerate(sids)
    ]
    return sids, [[e for events in per_leg for e in events[i::n]] for i in range(n)]


def check_lockstep(store: LegStore, sids: list[str]) -> None:
    for k, leg_sid in enumerate(sids):
        leg = store.get(leg_sid)
        assert leg is not None
        assert (leg.status, leg.from_, leg.to, leg.direction, leg.account_sid, leg.identity) \
            == ("in-progress", f"client:racer{k}", "+15550001111", "inbound", "AC" + "3" * 32,
                f"racer{k}"), leg
        assert leg.parent_sid == (sids[0] if k else None)
        assert store.live_sdk_legs(f"racer{k}") == [leg]
    legs = [leg.call_sid for leg in store.call_legs(sids[0])]
    assert legs[0] == sids[0] and sorted(legs[1:]) == sorted(sids[1:])


def run_threads(target: Callable[[list[LegEvent]], None], chunks: list[list[LegEvent]]) -> None:
    barrier = threading.Barrier(len(chunks))
    errors: list[BaseException] = []

    def work(chunk: list[LegEvent]) -> None:
        try:
            barrier.wait()
            target(chunk)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def _process_worker(spec: tuple[str, str, str], events: list[LegEvent], barrier: Any) -> None:
    """Runs in a spawned process: open the registry afresh and apply events."""
    store = open_spec(spec, Retention())
    store.ping()  # connect before the start line, so the workers really start together
    barrier.wait(timeout=60)
    apply_all(store, events)
    store.close()


def run_processes(spec: tuple[str, str, str], chunks: list[list[LegEvent]]) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(chunks))
    procs = [ctx.Process(target=_process_worker, args=(spec, chunk, barrier))
             for chunk in chunks]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * len(procs)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_concurrent_threads_end_in_the_in_order_state(make_store: StoreFactory,
                                                      seed: int) -> None:
    store = make_store()
    scenarios = [Scenario(str(n)) for n in range(4)]
    events = [e for s in scenarios for e in s.events]
    run_threads(lambda chunk: apply_all(store, chunk), shuffled_chunks(events, 8, seed))
    check_state(store, *scenarios)


def test_concurrent_processes_end_in_the_in_order_state(make_shared_store: StoreFactory) -> None:
    store = make_shared_store()
    scenarios = [Scenario(str(n)) for n in range(4)]
    run_processes(make_shared_store.spec,
                  shuffled_chunks([e for s in scenarios for e in s.events], 4, seed=7))
    check_state(store, *scenarios)


def test_threads_racing_on_one_leg_lose_no_update(make_store: StoreFactory) -> None:
    store = make_store()
    sids, chunks = lockstep_chunks(150, 6)
    run_threads(lambda chunk: apply_all(store, chunk), chunks)
    check_lockstep(store, sids)


def test_processes_racing_on_one_leg_lose_no_update(make_shared_store: StoreFactory) -> None:
    store = make_shared_store()
    sids, chunks = lockstep_chunks(150, 4)
    run_processes(make_shared_store.spec, chunks)
    check_lockstep(store, sids)
