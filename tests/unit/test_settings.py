"""Settings: required variables, malformed values, defaults, no secret in repr."""

import pytest

from config.settings import ConfigError, Settings

SID = "AC" + "0" * 32
BASE = {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": "auth-token-secret",
        "RELAY_API_TOKENS": "token-one-0123456789, token-two-0123456789"}


def test_defaults():
    s = Settings.from_env(BASE)
    assert s.relay_api_tokens == ("token-one-0123456789", "token-two-0123456789")
    assert s.store_url == "sqlite:///data/callrelay.sqlite3"
    assert s.twilio_api_base_url == "https://api.twilio.com"
    assert (s.trusted_proxy_hops, s.twilio_timeout_s, s.leg_retention_s) == (1, 10.0, 3600.0)
    assert s.rest_credentials == (SID, "auth-token-secret")


@pytest.mark.parametrize("missing", sorted(BASE))
def test_each_required_variable_is_named_when_missing(missing):
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError, match=f"^{missing} is required"):
        Settings.from_env(env)


@pytest.mark.parametrize("name, value", [
    ("TWILIO_ACCOUNT_SID", "AC123"), ("RELAY_API_TOKENS", "short"),
    ("TWILIO_TIMEOUT_S", "soon"), ("LEG_RETENTION_S", "-1"), ("STORE_URL", "postgres://x"),
    ("PUBLIC_BASE_URL", "example.com"), ("TWILIO_API_KEY", "SK1"),
])
def test_malformed_values_are_named(name, value):
    with pytest.raises(ConfigError, match=f"^{name}"):
        Settings.from_env({**BASE, name: value})


def test_api_key_is_preferred_for_rest():
    key = "SK" + "1" * 32
    s = Settings.from_env({**BASE, "TWILIO_API_KEY": key, "TWILIO_API_SECRET": "key-secret"})
    assert s.rest_credentials == (key, "key-secret")


def test_redis_url_is_used_when_store_url_is_unset():
    assert Settings.from_env({**BASE, "REDIS_URL": "redis://r:6379"}).store_url == "redis://r:6379"
    both = {**BASE, "REDIS_URL": "redis://r:6379", "STORE_URL": "sqlite:///x.db"}
    assert Settings.from_env(both).store_url == "sqlite:///x.db"


def test_secrets_stay_out_of_repr():
    text = repr(Settings.from_env({**BASE, "TWILIO_API_KEY": "SK" + "1" * 32,
                                   "TWILIO_API_SECRET": "key-secret"}))
    for secret in ("auth-token-secret", "token-one", "key-secret"):
        assert secret not in text


def test_redis_tls_verification_can_be_relaxed_for_self_signed_certificates():
    url = "rediss://:pw@ec2-1-2-3-4.compute-1.amazonaws.com:7070"
    assert Settings.from_env({**BASE, "REDIS_URL": url}).store_url == url
    relaxed = Settings.from_env({**BASE, "REDIS_URL": url, "REDIS_TLS_VERIFY": "false"})
    assert relaxed.store_url == url + "?ssl_cert_reqs=none&ssl_check_hostname=false"
    plain = "redis://localhost:6379/0"
    assert Settings.from_env({**BASE, "REDIS_URL": plain, "REDIS_TLS_VERIFY": "off"}).store_url \
        == plain
    with pytest.raises(ConfigError, match=r"^REDIS_TLS_VERIFY is malformed"):
        Settings.from_env({**BASE, "REDIS_TLS_VERIFY": "maybe"})
