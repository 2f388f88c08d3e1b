"""An identity's live legs come back in one order, whatever order they were stored or updated."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.legs.model import LegEvent

if TYPE_CHECKING:
    from tests.store.support import StoreFactory
    from tests.support.clock import FakeClock


def test_live_sdk_legs_are_in_call_sid_order(make_store: StoreFactory, clock: FakeClock) -> None:
    store = make_store(clock=clock)
    sids = ["CA" + digit * 32 for digit in "9305"]
    for sid in sids:  # stored in neither ascending nor descending order
        store.apply(LegEvent(sid, "ringing", from_="client:olga", direction="inbound"))
        clock.advance(1)
    for sid in reversed(sids):  # updated in another order (a Redis index orders by expiry)
        store.apply(LegEvent(sid, "in-progress"))
        clock.advance(1)
    assert [leg.call_sid for leg in store.live_sdk_legs("olga")] == sorted(sids)
