"""The leg rules: status order, terminal finality, which leg is the SDK's."""

from hypothesis import given
from hypothesis import strategies as st

from services.legs.model import Leg, LegEvent, client_identity
from services.legs.rules import merge

PARENT = "CA" + "1" * 32
CHILD = "CA" + "2" * 32


def fold(events, start=None):
    leg = start
    for i, event in enumerate(events):
        leg = merge(leg, event, now=float(i + 1))
    return leg


def test_status_moves_forward_only():
    leg = fold([LegEvent(CHILD, "in-progress"), LegEvent(CHILD, "ringing")])
    assert leg.status == "in-progress"


def test_terminal_status_is_final():
    leg = fold([LegEvent(CHILD, "completed"), LegEvent(CHILD, "in-progress"),
                LegEvent(CHILD, "busy")])
    assert leg.status == "completed"
    assert leg.ended_at == 1.0
    assert not leg.is_live


def test_ringing_before_initiated_keeps_ringing():
    leg = fold([LegEvent(CHILD, "ringing"), LegEvent(CHILD, "initiated")])
    assert leg.status == "ringing" and leg.is_live


def test_repeated_event_returns_the_same_leg():
    event = LegEvent(CHILD, "ringing", parent_sid=PARENT, to="client:bob")
    leg = merge(None, event, now=1.0)
    assert merge(leg, event, now=2.0) is leg


def test_device_calling_out_sits_on_the_parent():
    leg = fold([LegEvent(PARENT, "ringing", from_="client:alice", to="+15551230000",
                         direction="inbound")])
    assert leg.is_parent and leg.identity == "alice"


def test_phone_calling_out_is_not_an_sdk_leg():
    leg = fold([LegEvent(PARENT, "ringing", from_="+15551230000", to="+15550009999",
                         direction="inbound")])
    assert leg.identity is None and not leg.is_sdk


def test_called_device_sits_on_the_child():
    leg = fold([LegEvent(CHILD, "ringing", parent_sid=PARENT, from_="+15551230000",
                         to="client:bob", direction="outbound-dial")])
    assert not leg.is_parent and leg.identity == "bob" and leg.root_sid == PARENT


def test_child_dialling_a_phone_is_not_an_sdk_leg():
    leg = fold([LegEvent(CHILD, "ringing", parent_sid=PARENT, from_="client:alice",
                         to="+15551230000", direction="outbound-dial")])
    assert leg.identity is None


def test_rest_created_call_to_a_client_sits_on_the_parent():
    leg = fold([LegEvent(PARENT, "ringing", from_="+15550009999", to="client:carol",
                         direction="outbound-api")])
    assert leg.identity == "carol"


def test_client_identity_parsing():
    assert client_identity("client:alice") == "alice"
    assert client_identity("client:") is None
    assert client_identity("+15551230000") is None
    assert client_identity(None) is None


def test_attributes_fill_in_from_later_events():
    leg = fold([LegEvent(CHILD, "completed"),
                LegEvent(CHILD, "ringing", parent_sid=PARENT, to="client:bob",
                         direction="outbound-dial")])
    assert leg.status == "completed" and leg.parent_sid == PARENT and leg.identity == "bob"


CHILD_EVENTS = [
    LegEvent(CHILD, status, parent_sid=PARENT, from_="+15551230000", to="client:bob",
             direction="outbound-dial", sequence=seq)
    for seq, status in enumerate(["initiated", "ringing", "in-progress", "completed"])
]


def essence(leg: Leg):
    return (leg.status, leg.parent_sid, leg.identity, leg.from_, leg.to, leg.direction,
            leg.ended_at is not None)


# The state every order of the four callbacks ends in, written out (not computed by `merge`).
ENDED_CHILD = ("completed", PARENT, "bob", "+15551230000", "client:bob", "outbound-dial", True)


def test_the_ordered_callbacks_end_in_the_written_state():
    assert essence(fold(CHILD_EVENTS)) == ENDED_CHILD
    assert essence(fold(list(reversed(CHILD_EVENTS)))) == ENDED_CHILD


@given(st.lists(st.sampled_from(CHILD_EVENTS), min_size=1).flatmap(
    lambda picked: st.permutations(picked + CHILD_EVENTS)))
def test_any_order_and_duplication_ends_in_the_ordered_state(events):
    assert essence(fold(events)) == ENDED_CHILD


@given(st.permutations(CHILD_EVENTS[:3]))
def test_without_the_terminal_event_the_leg_ends_up_answered(events):
    leg = fold(events)
    assert leg.status == "in-progress" and leg.is_live and leg.ended_at is None
