"""Twilio's `Timestamp`: its usual shape read directly, any other through the RFC 2822 parser."""

from __future__ import annotations

import pytest

from services.legs.model import parse_timestamp


@pytest.mark.parametrize(("value", "expected"), [
    ("Sun, 06 Dec 2026 16:03:35 GMT", 1796573015.0),
    ("Sun, 06 Dec 2026 16:03:35 +0000", 1796573015.0),
    ("Tue, 29 Feb 2028 10:00:00 +0000", 1835431200.0),
    # Other shapes, through email.utils: an offset, no weekday, a one-digit day, no zone.
    ("Sun, 06 Dec 2026 17:03:35 +0100", 1796573015.0),
    ("06 Dec 2026 16:03:35 GMT", 1796573015.0),
    ("Sun, 6 Dec 2026 16:03:35 GMT", 1796573015.0),
    ("Sun, 06 Dec 2026 16:03:35", 1796573015.0),
])
def test_timestamps_read_in_utc(value, expected):
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize("value", [
    "Mon, 29 Feb 2027 10:00:00 +0000",  # no 29 February in 2027
    "Thu, 31 Apr 2026 10:00:00 GMT",
    "Sun, 06 Dec 2026 24:00:00 GMT",
    "yesterday",
    "",
])
def test_impossible_timestamps_are_none(value):
    assert parse_timestamp(value) is None
