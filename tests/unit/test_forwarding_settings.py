"""Forwarding settings: FORWARD_URL, FORWARD_SECRET, FORWARD_EVENTS, FORWARD_MAX_ATTEMPTS,
SUBSCRIBE_MESSAGES."""

import base64

import pytest
from standardwebhooks import Webhook

from config.settings import ConfigError, Settings

BASE = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "auth-token-secret",
        "RELAY_API_TOKENS": "token-one-0123456789"}
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
FORWARD = {**BASE, "FORWARD_URL": "https://backend.example.com/hooks/", "FORWARD_SECRET": SECRET}


def test_forwarding_is_off_by_default():
    s = Settings.from_env(BASE)
    assert (s.forwarding.url, s.forwarding.secret, s.forwarding.subscribe_messages) == (None, None, False)
    assert s.forwarding.events == frozenset({"messages"}) and s.forwarding.max_attempts == 10


def test_forward_url_turns_forwarding_and_subscriptions_on():
    s = Settings.from_env(FORWARD)
    assert s.forwarding.url == "https://backend.example.com/hooks"
    assert s.forwarding.secret == SECRET and s.forwarding.subscribe_messages
    Webhook(s.forwarding.secret)  # the standardwebhooks library takes it as it is


def test_secret_stays_out_of_repr():
    assert SECRET not in repr(Settings.from_env(FORWARD))
    assert SECRET.removeprefix("whsec_") not in repr(Settings.from_env(FORWARD))


def test_unpadded_base64_secret_is_accepted():
    unpadded = SECRET.rstrip("=")
    assert unpadded != SECRET
    assert Settings.from_env({**FORWARD, "FORWARD_SECRET": unpadded}).forwarding.secret == unpadded


def test_forward_secret_is_required_with_forward_url():
    env = {k: v for k, v in FORWARD.items() if k != "FORWARD_SECRET"}
    with pytest.raises(ConfigError, match=r"^FORWARD_SECRET is required when FORWARD_URL"):
        Settings.from_env(env)


@pytest.mark.parametrize("name, value", [
    ("FORWARD_SECRET", "not-a-whsec-secret"),
    ("FORWARD_SECRET", "whsec_"),
    ("FORWARD_SECRET", "whsec_not base64!"),
    ("FORWARD_SECRET", "whsec_" + base64.b64encode(b"short").decode()),
    ("FORWARD_URL", "backend.example.com/hooks"),
    ("FORWARD_URL", "ftp://backend.example.com"),
    ("FORWARD_EVENTS", "messages,calls"),
    ("FORWARD_EVENTS", " , "),
    ("FORWARD_MAX_ATTEMPTS", "0"),
    ("FORWARD_MAX_ATTEMPTS", "2.5"),
    ("FORWARD_MAX_ATTEMPTS", "many"),
    ("SUBSCRIBE_MESSAGES", "maybe"),
])
def test_malformed_values_are_named(name, value):
    with pytest.raises(ConfigError, match=f"^{name} is malformed"):
        Settings.from_env({**FORWARD, name: value})


def test_secret_value_is_never_in_the_error():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**FORWARD, "FORWARD_SECRET": "whsec_top-secret-value"})
    assert "top-secret-value" not in str(caught.value)


@pytest.mark.parametrize("value, expected", [
    ("messages", {"messages"}), ("legs", {"legs"}), ("messages,legs", {"messages", "legs"}),
    (" legs , messages ", {"messages", "legs"}), ("", {"messages"}),
])
def test_forward_events(value, expected):
    assert Settings.from_env({**FORWARD, "FORWARD_EVENTS": value}).forwarding.events == expected


def test_max_attempts():
    assert Settings.from_env({**FORWARD, "FORWARD_MAX_ATTEMPTS": "3"}).forwarding.max_attempts == 3


@pytest.mark.parametrize("value, expected", [
    ("off", False), ("OFF", False), ("false", False), ("0", False), ("no", False),
    ("on", True), ("true", True), ("1", True), ("yes", True), ("", True),
])
def test_subscribe_messages_overrides_the_default(value, expected):
    s = Settings.from_env({**FORWARD, "SUBSCRIBE_MESSAGES": value})
    assert s.forwarding.subscribe_messages is expected


def test_no_subscription_by_default_when_messages_are_not_forwarded():
    assert not Settings.from_env({**FORWARD, "FORWARD_EVENTS": "legs"}).forwarding.subscribe_messages


def test_subscribe_messages_on_needs_forward_url():
    with pytest.raises(ConfigError, match=r"^SUBSCRIBE_MESSAGES is on but FORWARD_URL"):
        Settings.from_env({**BASE, "SUBSCRIBE_MESSAGES": "on"})
    assert not Settings.from_env({**BASE, "SUBSCRIBE_MESSAGES": "off"}).forwarding.subscribe_messages


NEW_SECRET = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()


def test_several_secrets_during_a_rotation_the_first_is_current():
    s = Settings.from_env({**FORWARD, "FORWARD_SECRET": f" {NEW_SECRET} , {SECRET} "})
    assert s.forwarding.secrets == (NEW_SECRET, SECRET)
    assert s.forwarding.secret == NEW_SECRET
    assert {NEW_SECRET, SECRET} <= set(s.secrets)  # each one is redacted from the logs
    assert NEW_SECRET not in repr(s) and SECRET not in repr(s)


@pytest.mark.parametrize("value, position", [
    (f"{SECRET},whsec_short", "secret 2 of the 2 listed"),
    (f"not-a-secret,{SECRET}", "secret 1 of the 2 listed"),
    (f"{SECRET},", "secret 2 of the 2 listed"),
    (f"{SECRET},,{NEW_SECRET}", "secret 2 of the 3 listed"),
    (f"x,{SECRET},y", "secret 1, 3 of the 3 listed"),
])
def test_every_secret_is_checked_and_named_by_position(value, position):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**FORWARD, "FORWARD_SECRET": value})
    [problem] = caught.value.problems
    assert problem.startswith(f"FORWARD_SECRET is malformed ({position}): expected whsec_")
    assert SECRET not in problem and SECRET.removeprefix("whsec_") not in problem


def test_a_secret_listed_twice_is_a_mistake():
    with pytest.raises(ConfigError, match=r"^FORWARD_SECRET is malformed: a secret is listed "
                                          r"twice$"):
        Settings.from_env({**FORWARD, "FORWARD_SECRET": f"{SECRET},{SECRET}"})


def test_secret_problems_are_reported_with_the_others():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**FORWARD, "FORWARD_SECRET": f"{SECRET},bad",
                           "FORWARD_MAX_ATTEMPTS": "0", "LOG_LEVEL": "LOUD"})
    assert sorted(p.split(" ")[0] for p in caught.value.problems) == [
        "FORWARD_MAX_ATTEMPTS", "FORWARD_SECRET", "LOG_LEVEL"]


def test_a_malformed_secret_is_not_also_reported_missing():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**FORWARD, "FORWARD_SECRET": "bad"})
    assert len(caught.value.problems) == 1
