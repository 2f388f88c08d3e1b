"""The store contract for listing calls: filters and pages (GET /calls), on every adapter."""

from __future__ import annotations

from services.legs.model import LIVE
from services.store.legs import LegStore
from tests.store.scenario import apply_all, ev
from tests.store.support import StoreFactory


def ca(n: int) -> str:
    """Call SIDs whose order the test knows: CA000…01 < CA000…02 < …"""
    return f"CA{n:032x}"


def roots(calls: list[list]) -> list[str]:
    return [call[0].root_sid for call in calls]


def calls_of_several_kinds(store: LegStore) -> None:
    """Seven calls (SIDs 1 to 7); the comments say what each holds."""
    apply_all(store, [
        # 1: alice called a phone, both up
        ev(ca(1), "in-progress", from_="client:alice", to="+15550001111", direction="inbound"),
        ev(ca(101), "in-progress", parent_sid=ca(1), to="+15550001111",
           direction="outbound-dial"),
        # 2: a phone rings bob
        ev(ca(2), "ringing", from_="+15550002222", to="+15005550001", direction="inbound"),
        ev(ca(102), "ringing", parent_sid=ca(2), to="client:bob", direction="outbound-dial"),
        # 3: alice's leg ended (the phone's child leg is still up for a moment)
        ev(ca(3), "completed", from_="client:alice", direction="inbound"),
        ev(ca(103), "in-progress", parent_sid=ca(3), to="+15550003333",
           direction="outbound-dial"),
        # 4: over for good
        ev(ca(4), "completed", from_="client:alice", direction="inbound"),
        # 5: alice is up, the phone she dialled still rings
        ev(ca(5), "in-progress", from_="client:alice", direction="inbound"),
        ev(ca(105), "ringing", parent_sid=ca(5), direction="outbound-dial"),
        # 6: queued, not ringing yet
        ev(ca(6), "queued", from_="client:carol", direction="inbound"),
        # 7: a child whose parent callrelay never saw, in progress, with dora
        ev(ca(107), "in-progress", parent_sid=ca(7), to="client:dora",
           direction="outbound-dial"),
    ])


def test_open_calls_come_in_sid_order(make_store: StoreFactory) -> None:
    store = make_store()
    calls_of_several_kinds(store)
    calls = store.live_calls()
    assert roots(calls) == [ca(1), ca(2), ca(3), ca(5), ca(6), ca(7)]
    for call in calls:
        assert call == store.call_legs(call[0].root_sid)


def test_pages_follow_each_other_without_gap_or_repeat(make_store: StoreFactory) -> None:
    store = make_store()
    calls_of_several_kinds(store)
    assert roots(store.live_calls(2)) == [ca(1), ca(2)]
    assert roots(store.live_calls(2, after=ca(2))) == [ca(3), ca(5)]
    assert roots(store.live_calls(2, after=ca(5))) == [ca(6), ca(7)]
    assert store.live_calls(2, after=ca(7)) == []
    # The cursor is a SID, not a position: a call gone meanwhile moves nothing.
    assert roots(store.live_calls(2, after=ca(4))) == [ca(5), ca(6)]
    assert store.live_calls(0) == []


def test_an_identity_lists_the_calls_where_its_leg_is_up(make_store: StoreFactory) -> None:
    store = make_store()
    calls_of_several_kinds(store)
    assert roots(store.live_calls(identity="alice")) == [ca(1), ca(5)]
    assert roots(store.live_calls(identity="bob")) == [ca(2)]
    assert roots(store.live_calls(identity="dora")) == [ca(7)]
    assert store.live_calls(identity="nobody") == []
    assert roots(store.live_calls(1, after=ca(1), identity="alice")) == [ca(5)]


def test_a_status_lists_the_open_calls_with_a_leg_in_it(make_store: StoreFactory) -> None:
    store = make_store()
    calls_of_several_kinds(store)
    assert roots(store.live_calls(statuses=frozenset({"ringing"}))) == [ca(2), ca(5)]
    assert roots(store.live_calls(statuses=frozenset({"queued"}))) == [ca(6)]
    assert roots(store.live_calls(statuses=LIVE)) == [ca(1), ca(2), ca(3), ca(5), ca(7)]
    # Call 4 has ended altogether: it is not listed, whatever the filter.
    assert roots(store.live_calls(statuses=frozenset({"completed"}))) == [ca(3)]
    assert store.live_calls(statuses=frozenset({"busy"})) == []


def test_filters_hold_for_one_and_the_same_leg(make_store: StoreFactory) -> None:
    store = make_store()
    calls_of_several_kinds(store)
    # Call 5 has a ringing leg and alice's leg, but alice's leg is not the ringing one.
    assert store.live_calls(identity="alice", statuses=frozenset({"ringing"})) == []
    assert roots(store.live_calls(identity="alice", statuses=frozenset({"completed"}))) == [
        ca(3)]
    assert roots(store.live_calls(identity="alice", statuses=LIVE)) == [ca(1), ca(5)]
    assert roots(store.live_calls(1, identity="alice", statuses=LIVE)) == [ca(1)]
