"""The conference store contract, run against every adapter (SQLite file, real Redis)."""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.legs.conferences import Conference, ConferenceEvent, fold
from services.legs.rules import Retention

if TYPE_CHECKING:
    from tests.store.support import StoreFactory
    from tests.support.clock import FakeClock

RETENTION = Retention(leg_retention_s=600, max_call_duration_s=7200)


def cf() -> str:
    return "CF" + uuid.uuid4().hex


def ca() -> str:
    return "CA" + uuid.uuid4().hex


def ev(conf: str, kind: str, seq: int | None = None, call: str | None = None,
       name: str | None = "standup", ts: float | None = None) -> ConferenceEvent:
    return ConferenceEvent(conference_sid=conf, kind=kind, friendly_name=name, call_sid=call,
                           sequence=seq, timestamp=ts)


def present(conference: Conference | None) -> set[str]:
    assert conference is not None
    return {p.call_sid for p in conference.present()}


def shape(conference: Conference | None) -> tuple[Any, ...] | None:
    """What must match whatever the order of arrival: everything but the store's clock."""
    if conference is None:
        return None
    return (conference.sid, conference.friendly_name, conference.status,
            conference.started_at, conference.ended_at, conference.participants)


def test_a_join_is_found_by_sid_and_by_name(make_shared_store: StoreFactory) -> None:
    store = make_shared_store.conferences()
    conf, alice = cf(), ca()
    stored = store.apply(ev(conf, "participant-join", 1, alice, ts=1_800_000_000))
    assert present(stored) == {alice} and stored.status == "init"
    assert store.apply(ev(conf, "conference-start", 2)).status == "in-progress"
    for found in (store.get(conf), store.find("standup")):
        assert found is not None and shape(found) == shape(store.get(conf))
        assert present(found) == {alice} and found.friendly_name == "standup"
        (p,) = found.participants
        assert p.joined is not None and (p.joined.sequence, p.joined.at) == (1, 1_800_000_000)
    assert store.get(cf()) is None and store.find("nobody") is None


def test_a_leave_seen_before_its_join_leaves_the_participant_out(make_shared_store: StoreFactory) -> None:
    store = make_shared_store.conferences()
    conf, alice, bob = cf(), ca(), ca()
    store.apply(ev(conf, "participant-leave", 4, alice))
    store.apply(ev(conf, "participant-join", 3, bob))
    store.apply(ev(conf, "participant-join", 1, alice))
    assert present(store.get(conf)) == {bob}
    # Without sequence numbers, Twilio's timestamps order the events.
    carol = ca()
    store.apply(ev(conf, "participant-leave", call=carol, ts=1_800_000_060))
    store.apply(ev(conf, "participant-join", call=carol, ts=1_800_000_000))
    assert present(store.get(conf)) == {bob}


def test_a_participant_who_rejoins_is_in_again(make_shared_store: StoreFactory) -> None:
    store = make_shared_store.conferences()
    conf, alice = cf(), ca()
    for seq, kind in ((5, "participant-join"), (3, "participant-leave"), (1, "participant-join")):
        store.apply(ev(conf, kind, seq, alice))
    assert present(store.get(conf)) == {alice}


def test_a_duplicate_changes_nothing(make_shared_store: StoreFactory, clock: FakeClock) -> None:
    store = make_shared_store.conferences(clock=clock)
    conf = cf()
    join = ev(conf, "participant-join", 1, ca())
    first = store.apply(join)
    clock.advance(30)
    again = store.apply(join)
    assert again == first and store.get(conf) == first


def test_conference_end_ends_everyone_and_is_final(make_shared_store: StoreFactory) -> None:
    store = make_shared_store.conferences()
    conf, alice, bob = cf(), ca(), ca()
    store.apply(ev(conf, "participant-join", 1, alice))
    store.apply(ev(conf, "conference-end", 8, ts=1_800_000_100))
    store.apply(ev(conf, "participant-join", 2, bob))  # late, but from before the end
    store.apply(ev(conf, "conference-start", 1, ts=1_800_000_000))
    conference = store.get(conf)
    assert conference is not None and conference.status == "completed"
    assert (conference.started_at, conference.ended_at) == (1_800_000_000, 1_800_000_100)
    assert present(conference) == set() and len(conference.participants) == 2


def test_a_reused_name_finds_the_conference_in_progress(make_shared_store: StoreFactory,
                                                        clock: FakeClock) -> None:
    store = make_shared_store.conferences(clock=clock)
    yesterday, today, other = cf(), cf(), cf()
    store.apply(ev(yesterday, "conference-start", 1))
    clock.advance(10)
    store.apply(ev(today, "conference-start", 1))
    clock.advance(10)
    store.apply(ev(yesterday, "conference-end", 2))  # changed last, but ended
    store.apply(ev(other, "conference-start", 1, name="other"))
    found = store.find("standup")
    assert found is not None and found.sid == today
    clock.advance(10)
    store.apply(ev(today, "conference-end", 2))
    found = store.find("standup")
    assert found is not None and found.sid == today  # both ended: the one changed last


def test_an_ended_conference_is_kept_for_leg_retention_then_forgotten(
        make_shared_store: StoreFactory, clock: FakeClock) -> None:
    store = make_shared_store.conferences(RETENTION, clock)
    ended, live = cf(), cf()
    store.apply(ev(ended, "participant-join", 1, ca()))
    store.apply(ev(ended, "conference-end", 2))
    store.apply(ev(live, "participant-join", 1, ca(), name="live"))
    clock.advance(RETENTION.leg_retention_s - 1)
    assert store.get(ended) is not None and store.find("standup") is not None
    clock.advance(2)
    assert store.get(ended) is None and store.find("standup") is None
    assert store.purge() >= 0 and store.get(ended) is None
    # A conference whose end was never reported goes after the longest call.
    assert store.get(live) is not None
    clock.advance(RETENTION.max_call_duration_s)
    assert store.get(live) is None and store.find("live") is None


@pytest.mark.parametrize("purged", [False, True])
def test_a_forgotten_conference_is_not_revived_by_a_replay(make_shared_store: StoreFactory,
                                                           clock: FakeClock,
                                                           purged: bool) -> None:
    store = make_shared_store.conferences(RETENTION, clock)
    yesterday, today, alice, bob = cf(), cf(), ca(), ca()
    replays = [ev(yesterday, "conference-start", 1), ev(yesterday, "participant-join", 2, alice)]
    for event in replays:
        store.apply(event)
    ended = store.apply(ev(yesterday, "conference-end", 3, ts=1_800_000_100))
    clock.advance(RETENTION.leg_retention_s + 1)
    if purged:
        assert store.purge() >= 0
    store.apply(ev(today, "participant-join", 1, bob))
    for event in replays:
        replayed = store.apply(event)
        # The conference as its tombstone describes it: ended, when it ended, nobody in it.
        assert (replayed.sid, replayed.status, replayed.ended_at) == (
            yesterday, "completed", ended.ended_at)
        assert replayed.participants == ()
    assert store.get(yesterday) is None
    found = store.find("standup")
    assert found is not None and found.sid == today and present(found) == {bob}


@pytest.mark.parametrize("purged", [False, True])
def test_a_conference_whose_end_was_never_reported_is_buried_when_it_expires(
        make_shared_store: StoreFactory, clock: FakeClock, purged: bool) -> None:
    store = make_shared_store.conferences(RETENTION, clock)
    conf, alice = cf(), ca()
    join = ev(conf, "participant-join", 1, alice)
    store.apply(join)
    last_news = clock()
    clock.advance(RETENTION.max_call_duration_s + 1)
    if purged:
        assert store.purge() >= 0
    replayed = store.apply(join)
    assert (replayed.status, replayed.ended_at) == (
        "completed", last_news + RETENTION.max_call_duration_s)
    assert store.get(conf) is None and store.find("standup") is None
    # Bounded: tombstone_s after it was forgotten, the SID is unknown (Timestamps take over).
    clock.now = last_news + RETENTION.max_call_duration_s + RETENTION.tombstone_s + 1
    store.purge()
    assert present(store.apply(join)) == {alice}


def test_an_ended_conferences_tombstone_outlives_it_then_expires(
        make_shared_store: StoreFactory, clock: FakeClock) -> None:
    store = make_shared_store.conferences(RETENTION, clock)
    conf, alice = cf(), ca()
    store.apply(ev(conf, "conference-end", 2))
    ended_at = clock()
    clock.now = ended_at + RETENTION.tombstone_s - 1
    store.purge()
    assert store.apply(ev(conf, "participant-join", 1, alice)).status == "completed"
    clock.now = ended_at + RETENTION.tombstone_s + 1
    store.purge()
    assert present(store.apply(ev(conf, "participant-join", 1, alice))) == {alice}


def test_a_tombstone_is_seen_by_every_store_on_the_database(make_shared_store: StoreFactory,
                                                            clock: FakeClock) -> None:
    first = make_shared_store.conferences(RETENTION, clock)
    second = make_shared_store.conferences(RETENTION, clock)
    conf = cf()
    first.apply(ev(conf, "conference-end", 2))
    clock.advance(RETENTION.leg_retention_s + 1)
    assert second.apply(ev(conf, "conference-start", 1)).status == "completed"
    assert first.get(conf) is None and second.get(conf) is None


def test_concurrent_callbacks_lose_no_participant(make_shared_store: StoreFactory) -> None:
    stores = [make_shared_store.conferences(), make_shared_store.conferences()]
    conf = cf()
    calls = [[ca() for _ in range(15)] for _ in stores]

    def join(index: int) -> None:
        for seq, call in enumerate(calls[index]):
            stores[index].apply(ev(conf, "participant-join", 100 * index + seq, call))

    threads = [threading.Thread(target=join, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert present(stores[0].get(conf)) == {c for group in calls for c in group}


def test_racing_first_callbacks_lose_nothing_to_a_tombstone(make_shared_store: StoreFactory
                                                             ) -> None:
    """Every conference is new and four writers reach it at once: whoever reads between
    another's first write and its tombstone (written ahead) must not take it for a grave."""
    stores = [make_shared_store.conferences() for _ in range(4)]
    confs = [cf() for _ in range(40)]
    calls = [[ca() for _ in confs] for _ in stores]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def join(index: int) -> None:
        try:
            barrier.wait()
            for conf, call in zip(confs, calls[index], strict=True):
                stores[index].apply(ev(conf, "participant-join", index, call))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=join, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    for k, conf in enumerate(confs):
        assert present(stores[0].get(conf)) == {group[k] for group in calls}, conf


KINDS = ["participant-join", "participant-leave"]


@st.composite
def histories(draw: st.DrawFn) -> list[ConferenceEvent]:
    """A conference's callbacks (any subset, with repeats), in the order Twilio fired them."""
    conf, people = cf(), [ca() for _ in range(3)]
    events = [ev(conf, "conference-start", 0, ts=1_800_000_000)]
    for seq in range(1, draw(st.integers(1, 10)) + 1):
        events.append(ev(conf, draw(st.sampled_from(KINDS)), seq, draw(st.sampled_from(people)),
                         ts=1_800_000_000 + seq))
    if draw(st.booleans()):
        events.append(ev(conf, "conference-end", len(events), ts=1_800_000_099))
    return events


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories(), data=st.data())
def test_any_order_and_repetition_gives_what_the_true_order_gives(
        make_shared_store: StoreFactory, history: list[ConferenceEvent], data: st.DataObject) -> None:
    store = make_shared_store.conferences()
    repeats = data.draw(st.lists(st.sampled_from(history), max_size=len(history)))
    for event in data.draw(st.permutations(history + repeats)):
        store.apply(event)
    expected: Conference | None = None
    for event in history:
        expected = fold(expected, event, 0.0)
    assert shape(store.get(history[0].conference_sid)) == shape(expected)


@pytest.mark.redis
def test_redis_never_holds_a_conference_key_without_ttl(redis_factory: StoreFactory,
                                                        redis_client: redis.Redis) -> None:
    store = redis_factory.conferences(RETENTION)
    conf = cf()
    store.apply(ev(conf, "conference-start", 1))
    store.apply(ev(conf, "participant-join", 2, ca()))
    store.apply(ev(cf(), "conference-end", 1, name="ended"))
    ttls = {k: redis_client.pttl(k) for k in redis_client.scan_iter(f"{redis_factory.prefix}*")}
    assert len(ttls) >= 4, ttls  # conference, participants and name index keys
    assert all(ttl > 0 for ttl in ttls.values()), ttls
    # Tombstones: bounded, and longer than what they stand for.
    longest = (RETENTION.max_call_duration_s + RETENTION.tombstone_s) * 1000
    assert sum(":conference-ended:" in key for key in ttls) == 2, ttls
    for key, ttl in ttls.items():
        if ":conference-ended:" in key:
            sid = key.rsplit(":", 1)[1]
            assert ttls[f"{redis_factory.prefix}conference:{sid}"] < ttl <= longest, key
