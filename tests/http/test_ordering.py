"""Order, proven: any permutation and duplication of a call's webhooks ends in the ordered state."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.calls import SCENARIOS
from tests.support.env import ACCOUNT_SID


def registry_state(relay, call):
    """The call's legs as /calls shows them, keyed by role instead of by SID."""
    answer = relay.get(f"/calls/{call.parent_sid}")
    assert answer.status_code == 200, answer.json
    roles = {call.parent_sid: "parent", call.child_sid: "child"}
    return {roles[leg["call_sid"]]: {k: v for k, v in leg.items()
                                     if k not in ("call_sid", "parent_call_sid")}
            for leg in answer.json["legs"]}


@st.composite
def shuffled_call(draw):
    kind = draw(st.sampled_from(sorted(SCENARIOS)))
    ordered, shuffled = SCENARIOS[kind](ACCOUNT_SID), SCENARIOS[kind](ACCOUNT_SID)
    # Any prefix of the call's life (the voice request always comes first: it creates the
    # parent leg and is the only request before Twilio dials), duplicated and permuted.
    count = draw(st.integers(min_value=1, max_value=len(ordered.steps)))
    steps = shuffled.steps[:count]
    duplicates = draw(st.lists(st.sampled_from(steps), max_size=len(steps)))
    tail = draw(st.permutations(steps[1:] + duplicates))
    return ordered, ordered.steps[:count], shuffled, [steps[0], *tail]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shuffled_call())
def test_any_order_of_webhooks_ends_in_the_ordered_state(relay, case):
    ordered, in_order, shuffled, out_of_order = case
    relay.play(in_order)
    relay.play(out_of_order)
    assert registry_state(relay, shuffled) == registry_state(relay, ordered)
