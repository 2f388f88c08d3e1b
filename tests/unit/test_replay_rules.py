"""The rules against replayed callbacks: Twilio's Timestamp, stale callbacks, tombstone lifetime."""

from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.legs.model import LegEvent, parse_timestamp
from services.legs.rules import (
    STALE_FLOOR_S,
    TOMBSTONE_FLOOR_S,
    Retention,
    from_tombstone,
    is_stale,
    merge,
    tombstone,
)

LEG = "CA" + "3" * 32
NOON = 1_764_072_000.0  # Tue, 25 Nov 2025 12:00:00 UTC


@pytest.mark.parametrize("text", [
    "Tue, 25 Nov 2025 12:00:00 +0000",
    "Tue, 25 Nov 2025 14:00:00 +0200",
    "Tue, 25 Nov 2025 07:00:00 -0500",
    "Tue, 25 Nov 2025 12:00:00 GMT",
    "Tue, 25 Nov 2025 12:00:00 -0000",  # "zone unknown": Twilio stamps in UTC
    "25 Nov 2025 12:00:00",
])
def test_timestamp_is_read_as_rfc_2822(text):
    assert parse_timestamp(text) == NOON


@pytest.mark.parametrize("text", [None, "", "yesterday", "2025-11-25T12:00:00Z", "0",
                                  "Tue, 31 Feb 2025 12:00:00 +0000",
                                  "Tue, 25 Nov 99999999 12:00:00 +0000",
                                  "Tue, 25 Nov 2025 25:61:00 +0000"])
def test_malformed_timestamp_is_treated_as_absent(text):
    assert parse_timestamp(text) is None
    params = {"CallSid": LEG, "CallStatus": "ringing"}
    if text is not None:
        params["Timestamp"] = text
    assert LegEvent.from_params(params).timestamp is None


@given(st.text(max_size=60))
def test_no_timestamp_text_makes_a_callback_fail(text):
    event = LegEvent.from_params({"CallSid": LEG, "CallStatus": "ringing", "Timestamp": text})
    assert event.timestamp is None or isinstance(event.timestamp, float)


def test_status_callbacks_carry_their_timestamp():
    params = {"CallSid": LEG, "CallStatus": "in-progress",
              "Timestamp": formatdate(NOON, usegmt=True)}
    assert LegEvent.from_params(params).timestamp == NOON


def test_a_callback_is_stale_once_older_than_the_retention():
    retention = Retention(leg_retention_s=3600)
    stamped = LegEvent(LEG, "in-progress", timestamp=NOON)
    assert not is_stale(stamped, NOON + 3600, retention)
    assert is_stale(stamped, NOON + 3601, retention)
    assert not is_stale(stamped, NOON - 300, retention)  # Twilio's clock ahead of ours
    assert not is_stale(LegEvent(LEG, "in-progress"), NOON + 10**9, retention)  # no Timestamp


def test_a_short_retention_never_refuses_callbacks_twilio_retried():
    retention = Retention(leg_retention_s=1)
    stamped = LegEvent(LEG, "completed", timestamp=NOON)
    assert retention.stale_after_s == STALE_FLOOR_S
    assert not is_stale(stamped, NOON + 120, retention)
    assert is_stale(stamped, NOON + STALE_FLOOR_S + 1, retention)


def test_tombstones_last_a_week_or_longer_with_long_calls():
    assert Retention().tombstone_s == TOMBSTONE_FLOOR_S == 7 * 24 * 3600
    long = Retention(leg_retention_s=86400, max_call_duration_s=4 * 86400)
    assert long.tombstone_s == 9 * 86400


@given(retention_s=st.floats(1, 10**8), max_call_s=st.floats(60, 10**8),
       floor_s=st.floats(60, 10**8))
def test_no_gap_between_tombstone_and_timestamp_guard(retention_s, max_call_s, floor_s):
    """A reviving callback was stamped before the leg ended; once the tombstone is gone it is
    older than tombstone_s, which the guard must refuse (with room for clock skew: at least
    2 x MAX_CALL_DURATION_S, itself at least a minute)."""
    retention = Retention(leg_retention_s=retention_s, max_call_duration_s=max_call_s,
                          tombstone_floor_s=floor_s)  # TOMBSTONE_RETENTION_S, however low
    assert retention.tombstone_s - retention.stale_after_s >= 2 * 60
    assert retention.tombstone_s > retention.leg_retention_s  # outlives the leg data


def test_a_leg_answered_from_its_tombstone_is_forgotten():
    ended = merge(None, LegEvent(LEG, "completed", from_="client:alice"), now=NOON)
    assert not ended.forgotten
    buried = from_tombstone(LEG, "completed", NOON)
    assert buried.forgotten
    assert (buried.status, buried.ended_at, buried.is_live) == ("completed", NOON, False)
    assert not merge(None, LegEvent(LEG, "ringing"), now=NOON).forgotten


def test_a_leg_that_never_ended_is_buried_as_completed_when_it_expires():
    retention = Retention(leg_retention_s=60, max_call_duration_s=600)
    live = merge(None, LegEvent(LEG, "in-progress", from_="client:alice"), now=NOON)
    assert tombstone(live, retention) == ("completed", NOON + 600,
                                          NOON + 600 + retention.tombstone_s)
    ended = merge(live, LegEvent(LEG, "busy"), now=NOON + 5)
    assert tombstone(ended, retention) == ("busy", NOON + 5,
                                           NOON + 5 + retention.tombstone_s)
