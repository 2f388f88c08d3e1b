"""The store contract: what every adapter (SQLite file, real Redis) must do with call legs."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.legs.model import Leg
from services.legs.rules import Retention, merge
from tests.store.scenario import Scenario, apply_all, check_state, ev, sid
from tests.store.support import StoreFactory
from tests.support.clock import FakeClock


def test_apply_then_get_round_trips(make_store: StoreFactory) -> None:
    store = make_store()
    parent = sid()
    leg = store.apply(ev(parent, "ringing", from_="client:alice", to="+15550001111",
                         direction="inbound", account_sid="AC" + "2" * 32))
    assert store.get(parent) == leg
    assert (leg.status, leg.identity, leg.parent_sid, leg.ended_at) == ("ringing", "alice",
                                                                         None, None)
    assert leg.is_live and leg.is_sdk and leg.is_parent
    assert store.get(sid()) is None


def test_status_never_regresses(make_store: StoreFactory) -> None:
    store = make_store()
    leg = sid()
    store.apply(ev(leg, "in-progress"))
    assert store.apply(ev(leg, "ringing")).status == "in-progress"
    store.apply(ev(leg, "initiated"))
    got = store.get(leg)
    assert got is not None and got.status == "in-progress"


def test_terminal_status_is_final(make_store: StoreFactory) -> None:
    store = make_store()
    leg = sid()
    store.apply(ev(leg, "ringing"))
    ended = store.apply(ev(leg, "completed"))
    assert ended.ended_at is not None
    for late in ("ringing", "in-progress", "busy", "initiated"):
        assert store.apply(ev(leg, late)).status == "completed"
    got = store.get(leg)
    assert got is not None and got.status == "completed" and got.ended_at == ended.ended_at


def test_duplicates_are_harmless(make_store: StoreFactory, clock: FakeClock) -> None:
    store = make_store(clock=clock)
    leg = sid()
    event = ev(leg, "ringing", from_="client:alice", direction="inbound")
    first = store.apply(event)
    clock.advance(5)
    assert store.apply(event) == first
    assert store.get(leg) == first
    assert store.live_sdk_legs("alice") == [first]


def test_late_events_fill_in_missing_attributes(make_store: StoreFactory) -> None:
    store = make_store()
    leg = sid()
    store.apply(ev(leg, "in-progress"))
    filled = store.apply(ev(leg, "ringing", from_="client:alice", direction="inbound"))
    assert (filled.status, filled.identity) == ("in-progress", "alice")
    assert store.live_sdk_legs("alice") == [filled]


def test_identity_follows_the_merged_attributes(make_store: StoreFactory) -> None:
    store = make_store()
    parent, child = sid(), sid()
    # Without a direction a child's SDK end is its `To`; a later direction says otherwise.
    store.apply(ev(child, "ringing", parent_sid=parent, from_="+15005550001", to="client:bob"))
    assert [leg.call_sid for leg in store.live_sdk_legs("bob")] == [child]
    moved = store.apply(ev(child, "ringing", direction="inbound"))
    assert moved.identity is None and store.get(child) == moved
    assert store.live_sdk_legs("bob") == []


def test_call_legs_lists_parent_first_then_children(make_store: StoreFactory,
                                                     clock: FakeClock) -> None:
    store = make_store(clock=clock)
    parent, child_a, child_b, other = sid(), sid(), sid(), sid()
    store.apply(ev(child_b, "ringing", parent_sid=parent, to="client:bob"))
    clock.advance(1)
    assert [leg.call_sid for leg in store.call_legs(parent)] == [child_b]  # parent not yet seen
    store.apply(ev(child_a, "initiated", parent_sid=parent, to="+15550001111"))
    clock.advance(1)
    store.apply(ev(parent, "in-progress", from_="+15550002222"))
    store.apply(ev(other, "ringing", parent_sid=sid()))
    legs = store.call_legs(parent)
    assert [leg.call_sid for leg in legs] == [parent, child_b, child_a]
    assert legs[0].is_parent and all(leg.parent_sid == parent for leg in legs[1:])
    assert store.call_legs(sid()) == []


def test_live_sdk_legs_by_identity(make_store: StoreFactory) -> None:
    store = make_store()
    # A device calls out: the SDK sits on the parent (From=client:alice).
    out = sid()
    store.apply(ev(out, "initiated", from_="client:alice", to="+15550001111",
                   direction="inbound"))
    assert store.live_sdk_legs("alice") == []  # not live until ringing
    alice = store.apply(ev(out, "ringing"))
    assert store.live_sdk_legs("alice") == [alice]
    # A phone calls in and <Dial><Client>bob: the SDK sits on the child (To=client:bob).
    inbound, child = sid(), sid()
    store.apply(ev(inbound, "ringing", from_="+15550002222", to="+15005550001",
                   direction="inbound"))
    bob = store.apply(ev(child, "ringing", parent_sid=inbound, from_="+15550002222",
                         to="client:bob", direction="outbound-dial"))
    assert store.live_sdk_legs("bob") == [bob]
    assert store.live_sdk_legs("carol") == []
    store.apply(ev(child, "completed"))
    assert store.live_sdk_legs("bob") == []
    assert store.live_sdk_legs("alice") == [alice]


def test_live_calls_exclude_fully_ended_calls(make_store: StoreFactory) -> None:
    store = make_store()
    ended, live, half = sid(), sid(), sid()
    ended_child, half_child = sid(), sid()
    apply_all(store, [
        ev(ended, "in-progress"), ev(ended_child, "ringing", parent_sid=ended),
        ev(ended_child, "busy"), ev(ended, "completed"),
        ev(live, "ringing", from_="client:alice", direction="inbound"),
        # the parent ended but its child is still up: the call is live
        ev(half, "completed"), ev(half_child, "in-progress", parent_sid=half),
    ])
    calls = store.live_calls()
    assert sorted(call[0].root_sid for call in calls) == sorted([live, half])
    for call in calls:
        assert call == store.call_legs(call[0].root_sid)
    assert len(store.live_calls(limit=1)) == 1
    assert store.live_calls(limit=0) == []


def test_ended_legs_are_forgotten_after_retention(make_store: StoreFactory,
                                                  clock: FakeClock) -> None:
    store = make_store(Retention(leg_retention_s=60, max_call_duration_s=600), clock)
    parent, child = sid(), sid()
    store.apply(ev(parent, "in-progress", from_="client:alice", direction="inbound"))
    store.apply(ev(child, "ringing", parent_sid=parent))
    clock.advance(10)
    store.apply(ev(child, "completed"))
    clock.advance(59)
    assert store.get(child) is not None
    assert [leg.call_sid for leg in store.call_legs(parent)] == [parent, child]
    clock.advance(2)
    assert store.get(child) is None
    assert [leg.call_sid for leg in store.call_legs(parent)] == [parent]
    assert store.get(parent) is not None


def test_live_legs_are_forgotten_without_updates(make_store: StoreFactory,
                                                 clock: FakeClock) -> None:
    store = make_store(Retention(leg_retention_s=60, max_call_duration_s=600), clock)
    leg = sid()
    store.apply(ev(leg, "ringing", from_="client:alice", direction="inbound"))
    clock.advance(599)
    store.apply(ev(leg, "in-progress"))  # an update restarts the count
    clock.advance(599)
    assert store.get(leg) is not None and len(store.live_calls()) == 1
    clock.advance(2)  # the `completed` callback was lost
    assert store.get(leg) is None
    assert store.live_sdk_legs("alice") == []
    assert store.live_calls() == []
    assert store.call_legs(leg) == []
    # Forgotten, but not unknown: its tombstone keeps a replay from reviving it.
    replay = store.apply(ev(leg, "ringing"))
    assert replay.status == "completed" and not replay.is_live
    assert store.get(leg) is None


def test_purge_keeps_retained_legs(make_store: StoreFactory, clock: FakeClock) -> None:
    store = make_store(Retention(leg_retention_s=60, max_call_duration_s=600), clock)
    gone_live, gone_ended, kept = sid(), sid(), sid()
    store.apply(ev(gone_live, "ringing"))
    store.apply(ev(gone_ended, "completed"))
    clock.advance(300)
    store.apply(ev(kept, "in-progress", from_="client:alice", direction="inbound"))
    clock.advance(301)
    purged = store.purge()
    assert isinstance(purged, int) and purged >= 0
    assert store.purge() == 0
    assert store.get(gone_live) is None and store.get(gone_ended) is None
    assert store.get(kept) is not None
    assert [[leg.call_sid for leg in call] for call in store.live_calls()] == [[kept]]


def test_a_second_store_on_the_same_registry_sees_the_legs(make_store: StoreFactory) -> None:
    first, second = make_store(), make_store()
    scenario = Scenario()
    apply_all(first, scenario.events)
    check_state(second, scenario)


events_for_one_leg = st.lists(
    st.builds(
        dict,
        status=st.sampled_from(["queued", "initiated", "ringing", "in-progress",
                                "completed", "busy", "no-answer", "canceled", "failed"]),
        from_=st.sampled_from([None, "client:alice", "+15550001111", "client:carol"]),
        to=st.sampled_from([None, "client:bob", "+15550002222"]),
        direction=st.sampled_from([None, "inbound", "outbound-dial", "outbound-api"]),
        child=st.booleans(),
    ),
    min_size=1, max_size=8,
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=events_for_one_leg)
def test_stored_leg_is_the_fold_of_its_events(make_store: StoreFactory, clock: FakeClock,
                                             events: list[dict[str, Any]]) -> None:
    store = make_store(clock=clock)
    leg_sid, parent = sid(), sid()
    expected: Leg | None = None
    for attrs in events:
        child = attrs.pop("child")
        event = ev(leg_sid, parent_sid=parent if child else None, **attrs)
        clock.advance(1)
        expected = merge(expected, event, clock())
        assert store.apply(event) == expected
    assert expected is not None
    assert store.get(leg_sid) == expected
    if expected.identity:  # other examples' legs may share the identity
        assert (expected in store.live_sdk_legs(expected.identity)) == expected.is_live
    roots = {call[0].root_sid for call in store.live_calls()}
    assert (expected.root_sid in roots) == (not expected.is_ended)
    assert expected in store.call_legs(expected.root_sid)
