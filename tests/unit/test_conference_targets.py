"""Who in a conference gets a /notify: its live Voice SDK participants, with the exact 404/409s.

Participants callrelay never saw are looked up (at most MAX_LOOKUPS a request); a spent lookup
budget still lets the known participants get the message.
"""

from __future__ import annotations

import pytest

from services.errors import ConferenceNotFound, LookupBudgetExhausted, NoSuchLeg, RelayError
from services.legs.conferences import Conference, Mark, Participant
from services.legs.model import Leg, LegEvent
from services.use_cases.conference_targets import (
    MAX_LOOKUPS,
    ParticipantLeg,
    find_conference,
    live_sdk_participants,
    participant_legs,
)
from tests.support.clock import FakeClock
from tests.support.memory_store import MemoryLegStore

CF = "CF" + "c" * 32


def sid(n: int) -> str:
    return f"CA{n:032x}"


def joined(n: int) -> Participant:
    return Participant(sid(n), joined=Mark(n, float(n)))


def left(n: int) -> Participant:
    return Participant(sid(n), joined=Mark(n, float(n)), left=Mark(100 + n, 100.0 + n))


def conference(*participants: Participant, name: str | None = "standup",
               ended: bool = False) -> Conference:
    return Conference(sid=CF, friendly_name=name, started_at=1.0,
                      ended_at=200.0 if ended else None, participants=participants)


class Lookups:
    """Stands in for the Reconciler: what Twilio would answer for each SID, and who was asked."""

    def __init__(self, known: dict[str, Leg] | None = None,
                 refuse_after: int | None = None) -> None:
        self.known = known or {}
        self.refuse_after = refuse_after
        self.asked: list[tuple[str, float | None]] = []

    def call(self, call_sid: str, deadline: float | None = None) -> Leg | None:
        if self.refuse_after is not None and len(self.asked) >= self.refuse_after:
            raise LookupBudgetExhausted("spent", retry_after_s=3)
        self.asked.append((call_sid, deadline))
        return self.known.get(call_sid)


@pytest.fixture
def legs() -> MemoryLegStore:
    return MemoryLegStore(clock=FakeClock())


def sdk(legs: MemoryLegStore, n: int, status: str = "in-progress") -> Leg:
    return legs.apply(LegEvent(sid(n), status, from_="+15005550006", to=f"client:user{n}",
                               direction="outbound-api"))


def phone(legs: MemoryLegStore, n: int) -> Leg:
    return legs.apply(LegEvent(sid(n), "in-progress", from_="+15005550006", to="+15005550007",
                               direction="outbound-api"))


def refusal(conf: Conference, legs: MemoryLegStore, lookups: Lookups) -> RelayError:
    with pytest.raises(RelayError) as refused:
        live_sdk_participants(conf, legs, lookups)
    return refused.value


def test_the_live_sdk_participants_present_now(legs):
    one, two = sdk(legs, 1), sdk(legs, 2)
    phone(legs, 3)
    sdk(legs, 4, status="completed")
    sdk(legs, 5)
    conf = conference(joined(1), joined(2), joined(3), joined(4), left(5))
    assert live_sdk_participants(conf, legs, Lookups()) == [one, two]


def test_unknown_participants_are_looked_up_with_the_deadline(legs):
    found = Leg(call_sid=sid(2), status="ringing", identity="bob")
    lookups = Lookups({sid(2): found})
    result = live_sdk_participants(conference(joined(1), joined(2)), legs, lookups,
                                   deadline=99.0)
    assert result == [found]
    assert lookups.asked == [(sid(1), 99.0), (sid(2), 99.0)]


def test_at_most_max_lookups_are_made(legs):
    lookups = Lookups()
    last = sdk(legs, MAX_LOOKUPS + 2)
    conf = conference(*(joined(n) for n in range(1, MAX_LOOKUPS + 3)))
    assert live_sdk_participants(conf, legs, lookups) == [last]
    assert [s for s, _ in lookups.asked] == [sid(n) for n in range(1, MAX_LOOKUPS + 1)]
    assert MAX_LOOKUPS == 20


def test_a_spent_budget_still_lets_the_known_participants_get_it(legs):
    known = sdk(legs, 3)
    lookups = Lookups(refuse_after=1)
    conf = conference(joined(1), joined(2), joined(3), joined(4))
    assert live_sdk_participants(conf, legs, lookups) == [known]
    assert lookups.asked == [(sid(1), None)]  # refused at the second: nobody asked after


def test_a_spent_budget_is_the_answer_when_nobody_known_can_get_it(legs):
    error = refusal(conference(joined(1), joined(2)), legs, Lookups(refuse_after=0))
    assert type(error) is LookupBudgetExhausted
    assert error.headers == {"Retry-After": "3"}


def test_an_ended_conference(legs):
    error = refusal(conference(joined(1), ended=True), legs, Lookups())
    assert type(error) is NoSuchLeg
    assert error.message == ("Conference 'standup' has ended; nobody in it can receive "
                             "messages.")
    assert error.details == {"conference_sid": CF, "status": "completed"}


def test_an_empty_conference_is_named_by_its_sid_without_a_name(legs):
    error = refusal(conference(left(1), name=None), legs, Lookups())
    assert (type(error), error.message) == (NoSuchLeg, f"Nobody is in conference '{CF}' now.")
    assert error.details == {"conference_sid": CF, "status": "in-progress"}


def test_only_phones_present(legs):
    phone(legs, 1)
    error = refusal(conference(joined(1), joined(2)), legs, Lookups())
    assert type(error) is NoSuchLeg
    assert error.message == ("No Voice SDK client is live in conference 'standup'; phones "
                             "cannot receive messages.")
    assert error.details == {"conference_sid": CF, "status": "in-progress", "participants": 2}


def test_every_participant_with_its_leg(legs):
    one = sdk(legs, 1)
    conf = conference(joined(1), left(2))
    assert participant_legs(conf, legs) == [ParticipantLeg(joined(1), True, one),
                                           ParticipantLeg(left(2), False, None)]


class Conferences:
    def __init__(self, *known: Conference) -> None:
        self.known = {c.sid: c for c in known}
        self.by_name = {c.friendly_name: c for c in known}

    def get(self, sid: str) -> Conference | None:
        return self.known.get(sid)

    def find(self, name: str) -> Conference | None:
        return self.by_name.get(name)


def test_a_conference_is_found_by_sid_or_name():
    conf = conference(name="CF" + "d" * 32 + "x")
    store = Conferences(conf)
    assert find_conference(store, CF) is conf
    assert find_conference(store, "CF" + "d" * 32 + "x") is conf
    with pytest.raises(ConferenceNotFound) as missing:
        find_conference(store, "CF" + "e" * 32)
    assert missing.value.message == ("callrelay knows no conference with this name or SID (or "
                                     "it ended more than LEG_RETENTION_S ago).")
    assert missing.value.details == {"conference": "CF" + "e" * 32}
