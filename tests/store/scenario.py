"""Call legs for the store tests: events, a three-call scenario, and what the store must then hold."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from services.legs.model import Leg, LegEvent
from services.legs.rules import merge
from services.store.legs import LegStore


def sid() -> str:
    return "CA" + uuid.uuid4().hex


def ev(call_sid: str, status: str, **attrs: Any) -> LegEvent:
    return LegEvent(call_sid=call_sid, status=status, **attrs)


def fold(events: Iterable[LegEvent]) -> dict[str, Leg]:
    """The legs applying events in order gives, by the pure rules."""
    legs: dict[str, Leg] = {}
    for e in events:
        legs[e.call_sid] = merge(legs.get(e.call_sid), e, 0.0)
    return legs


def shape(leg: Leg | None) -> tuple[Any, ...] | None:
    """What must match whatever the order of arrival: everything but timestamps."""
    if leg is None:
        return None
    return (leg.status, leg.identity, leg.parent_sid, leg.from_, leg.to, leg.direction,
            leg.account_sid, leg.ended_at is not None)


class Scenario:
    """Three calls: SDK calls out (alice), phone calls in to the SDK (bob), an SDK call canceled.

    Attributes arrive spread over several events, so a lost update shows in the result.
    """

    def __init__(self, tag: str = "") -> None:
        self.p1, self.c1, self.p2, self.c2, self.p3, self.c3 = (sid() for _ in range(6))
        self.alice, self.bob, self.carol = (f"{name}{tag}" for name in ("alice", "bob", "carol"))
        acct = "AC" + "1" * 32
        dial1 = {"parent_sid": self.p1, "from_": "+15005550001", "to": "+15550001111",
                 "direction": "outbound-dial"}
        dial3 = {"parent_sid": self.p3, "to": "+15550003333"}
        self.events = [
            ev(self.p1, "ringing", from_=f"client:{self.alice}"),
            ev(self.p1, "queued", to="+15550001111"),
            ev(self.p1, "initiated", direction="inbound"),
            ev(self.c1, "initiated", **dial1),
            ev(self.c1, "ringing", parent_sid=self.p1),
            ev(self.p1, "in-progress", account_sid=acct),
            ev(self.c1, "in-progress", **dial1),
            ev(self.c1, "completed", parent_sid=self.p1, sequence=3),
            ev(self.p1, "completed", account_sid=acct),
            ev(self.p2, "ringing", from_="+15550002222", direction="inbound"),
            ev(self.p2, "queued", to="+15005550001", account_sid=acct),
            ev(self.c2, "initiated", parent_sid=self.p2, to=f"client:{self.bob}"),
            ev(self.c2, "ringing", parent_sid=self.p2, from_="+15550002222"),
            ev(self.c2, "queued", parent_sid=self.p2, direction="outbound-dial"),
            ev(self.p2, "in-progress"),
            ev(self.c2, "in-progress", parent_sid=self.p2, account_sid=acct),
            ev(self.p3, "ringing", from_=f"client:{self.carol}"),
            ev(self.p3, "initiated", to="+15550003333"),
            ev(self.c3, "initiated", **dial3),
            ev(self.c3, "ringing", **dial3),
            ev(self.c3, "no-answer", **dial3),
            ev(self.p3, "canceled"),
        ]

    def expected(self) -> dict[str, Leg]:
        return fold(self.events)


def apply_all(store: LegStore, events: Iterable[LegEvent]) -> None:
    for e in events:
        store.apply(e)


def check_state(store: LegStore, *scenarios: Scenario) -> None:
    """The store holds what applying the scenarios in order gives, and its indexes agree."""
    for s in scenarios:
        for call_sid, leg in s.expected().items():
            assert shape(store.get(call_sid)) == shape(leg), call_sid
        assert [leg.call_sid for leg in store.call_legs(s.p1)] == [s.p1, s.c1]
        assert [leg.call_sid for leg in store.live_sdk_legs(s.bob)] == [s.c2]
        assert store.live_sdk_legs(s.alice) == []
        assert store.live_sdk_legs(s.carol) == []
    live = [[leg.call_sid for leg in call] for call in store.live_calls()]
    assert sorted(live) == sorted([s.p2, s.c2] for s in scenarios)
