"""Settings: required variables, malformed values, defaults, no secret in repr."""

import pytest

from config.settings import ConfigError, Settings
from services.store.redis.topology import RedisTopology

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
    ("TWILIO_TIMEOUT_S", "soon"), ("LEG_RETENTION_S", "-1"), ("STORE_URL", "mysql://x"),
    ("DATABASE_URL", "mysql://db"), ("STORE_POOL_SIZE", "0"),
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


def test_database_url_is_used_when_neither_store_url_nor_redis_url_is_set():
    heroku = "postgres://u:pw@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d1"  # as Heroku writes it
    assert Settings.from_env({**BASE, "DATABASE_URL": heroku}).store_url == heroku
    redis_too = {**BASE, "DATABASE_URL": heroku, "REDIS_URL": "redis://r:6379"}
    assert Settings.from_env(redis_too).store_url == "redis://r:6379"
    chosen = {**BASE, "DATABASE_URL": heroku, "STORE_URL": "postgresql://db.internal/relay"}
    assert Settings.from_env(chosen).store_url == "postgresql://db.internal/relay"
    assert Settings.from_env(BASE).store_pool_size == 4
    assert Settings.from_env({**BASE, "STORE_POOL_SIZE": "2"}).store_pool_size == 2


def test_a_malformed_database_url_is_named_without_its_password():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE, "DATABASE_URL": "postgres://u:hunter2@h:54x2/d"})
    assert caught.value.problems[0].startswith("DATABASE_URL is malformed")
    assert "hunter2" not in str(caught.value)


def test_secrets_stay_out_of_repr():
    settings = Settings.from_env({**BASE, "TWILIO_API_KEY": "SK" + "1" * 32,
                                  "TWILIO_API_SECRET": "key-secret",
                                  "DATABASE_URL": "postgres://u:db-p%40ssword@h/d"})
    for secret in ("auth-token-secret", "token-one", "key-secret", "db-p"):
        assert secret not in repr(settings)
    assert "db-p@ssword" in settings.secrets  # redacted from every log line


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


def test_log_level_defaults_to_info_and_ignores_case():
    assert Settings.from_env(BASE).log_level == "INFO"
    assert Settings.from_env({**BASE, "LOG_LEVEL": "debug"}).log_level == "DEBUG"
    assert Settings.from_env({**BASE, "LOG_LEVEL": " Warning "}).log_level == "WARNING"


def test_dial_allow_defaults_to_the_caller_ids_region_not_its_calling_code():
    # +1 is the whole NANP (Jamaica, the Dominican Republic, …): the default is the US alone.
    assert Settings.from_env({**BASE, "TWILIO_CALLER_ID": "+15005550006"}).dial_allow \
        == ("US",)
    assert Settings.from_env({**BASE, "TWILIO_CALLER_ID": "+16135550123"}).dial_allow \
        == ("CA",)
    assert Settings.from_env({**BASE, "TWILIO_CALLER_ID": "+442079460000"}).dial_allow \
        == ("GB",)
    # No caller ID and no DIAL_ALLOW: no phone number is dialable at all.
    assert Settings.from_env(BASE).dial_allow == ()
    assert Settings.from_env(BASE).dial_sip_domains == frozenset()


def test_dial_allow_and_sip_domains_are_lists():
    s = Settings.from_env({**BASE, "TWILIO_CALLER_ID": "+15005550006",
                           "DIAL_ALLOW": "+1415, +44,", "DIAL_SIP_DOMAINS":
                           "Example.SIP.twilio.com, pbx.example.com"})
    assert s.dial_allow == ("+1415", "+44")
    assert s.dial_sip_domains == frozenset({"example.sip.twilio.com", "pbx.example.com"})
    assert Settings.from_env({**BASE, "DIAL_ALLOW": "*"}).dial_allow == ("*",)
    assert Settings.from_env({**BASE, "DIAL_ALLOW": "us, CA,+44"}).dial_allow \
        == ("US", "CA", "+44")


def test_conference_joins_are_closed_unless_asked():
    closed = Settings.from_env(BASE)
    assert (closed.conference_ticket_secret, closed.dial_conferences_open) == (None, False)
    secret = "x" * 32
    tickets = Settings.from_env({**BASE, "CONFERENCE_TICKET_SECRET": secret})
    assert (tickets.conference_ticket_secret, tickets.dial_conferences_open) == (secret, False)
    assert secret not in repr(tickets) and secret in tickets.secrets
    assert Settings.from_env({**BASE, "DIAL_CONFERENCES": "Open"}).dial_conferences_open


@pytest.mark.parametrize("env, problem", [
    ({"CONFERENCE_TICKET_SECRET": "x" * 31}, "CONFERENCE_TICKET_SECRET is malformed: expected "
     "at least 32 random characters, such as the output of `openssl rand -hex 32`"),
    ({"DIAL_CONFERENCES": "yes"}, "DIAL_CONFERENCES is malformed: expected open (anyone may "
     "join any conference), or unset"),
    ({"DIAL_CONFERENCES": "open", "CONFERENCE_TICKET_SECRET": "x" * 32}, "DIAL_CONFERENCES is "
     "malformed: open lets anyone join any conference, so CONFERENCE_TICKET_SECRET would check "
     "nothing; set one or the other"),
    ({"DIAL_ALLOW": "US,XX"}, "DIAL_ALLOW is malformed: expected comma-separated E.164 prefixes "
     "and ISO 3166 region codes such as US,CA,+44, or * (XX is no region code)"),
    ({"DIAL_ALLOW": "USA"}, "DIAL_ALLOW is malformed: expected comma-separated E.164 prefixes "
     "and ISO 3166 region codes such as US,CA,+44, or *"),
])
def test_malformed_dial_variables_are_one_line_each(env, problem):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**BASE, **env})
    assert raised.value.problems == (problem,)


SANDBOX_TOKEN = "sandbox-auth-token-not-a-secret"  # published in .env.example
SANDBOX_TICKETS = "sandbox-conference-ticket-secret-not-a-secret"


@pytest.mark.parametrize("base_url", [None, "https://api.twilio.com", "http://10.0.0.7:4010",
                                      "http://127.0.0.1.example.com:4010"])
def test_the_sandboxs_published_secrets_are_refused_away_from_the_local_mock(base_url):
    env = {**BASE, "TWILIO_AUTH_TOKEN": SANDBOX_TOKEN,
           "CONFERENCE_TICKET_SECRET": SANDBOX_TICKETS}
    if base_url is not None:
        env["TWILIO_API_BASE_URL"] = base_url
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert raised.value.problems == tuple(
        f"{name} is malformed: it is the sandbox's, published in .env.example, and works only "
        "with TWILIO_API_BASE_URL on this machine (127.0.0.1 or localhost); set your own"
        for name in ("TWILIO_AUTH_TOKEN", "CONFERENCE_TICKET_SECRET"))


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:4010", "http://localhost:4010"])
def test_the_sandboxs_secrets_work_beside_the_local_mock(base_url):
    s = Settings.from_env({**BASE, "TWILIO_AUTH_TOKEN": SANDBOX_TOKEN,
                           "CONFERENCE_TICKET_SECRET": SANDBOX_TICKETS,
                           "TWILIO_API_BASE_URL": base_url})
    assert (s.twilio_auth_token, s.conference_ticket_secret) == (SANDBOX_TOKEN, SANDBOX_TICKETS)


@pytest.mark.parametrize("name, value", [
    ("LOG_LEVEL", "LOUD"), ("LOG_LEVEL", "10"),
    ("DIAL_ALLOW", "1"), ("DIAL_ALLOW", "+1,44"), ("DIAL_ALLOW", "+"), ("DIAL_ALLOW", ","),
    ("DIAL_ALLOW", "+0"), ("DIAL_ALLOW", "+1234567890123456"), ("DIAL_ALLOW", "+\u0661"),
    ("DIAL_SIP_DOMAINS", "*.example.com"), ("DIAL_SIP_DOMAINS", "sip:pbx.example.com"),
    ("DIAL_SIP_DOMAINS", "pbx.example.com:5060"), ("DIAL_SIP_DOMAINS", "-bad.example.com"),
    ("TWILIO_CALLER_ID", "5005550006"), ("TWILIO_CALLER_ID", "+999123456"),
    ("TWILIO_CALLER_ID", "client:alice"),
])
def test_malformed_log_level_dial_and_caller_id_are_named(name, value):
    with pytest.raises(ConfigError, match=f"^{name} is malformed: expected") as raised:
        Settings.from_env({**BASE, name: value})
    assert "\n" not in str(raised.value)


def test_caller_id_is_checked_even_with_an_allow_list():
    with pytest.raises(ConfigError, match=r"^TWILIO_CALLER_ID is malformed"):
        Settings.from_env({**BASE, "DIAL_ALLOW": "+1", "TWILIO_CALLER_ID": "15005550006"})


def test_serving_defaults_are_the_platforms():
    serving = Settings.from_env(BASE).serving
    assert (serving.bind, serving.workers, serving.connections) == ("0.0.0.0:8000", 2, 1000)


def test_serving_variables_as_a_laptop_or_a_platform_sets_them():
    serving = Settings.from_env({**BASE, "HOST": "127.0.0.1", "PORT": "5000",
                                 "WEB_CONCURRENCY": "4", "GUNICORN_CONNECTIONS": "50"}).serving
    assert (serving.bind, serving.workers, serving.connections) == ("127.0.0.1:5000", 4, 50)
    assert Settings.from_env({**BASE, "HOST": "::1"}).serving.bind == "[::1]:8000"


@pytest.mark.parametrize("name, value, problem", [
    ("WEB_CONCURRENCY", "two", "WEB_CONCURRENCY is malformed: expected a whole number"),
    ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY is malformed: expected a whole number at least 1"),
    ("WEB_CONCURRENCY", "2.5", "WEB_CONCURRENCY is malformed: expected a whole number"),
    ("GUNICORN_CONNECTIONS", "lots",
     "GUNICORN_CONNECTIONS is malformed: expected a whole number"),
    ("PORT", "70000", "PORT is malformed: expected a whole number from 1 to 65535"),
    ("HOST", "localhost", "HOST is malformed: expected an IP address to listen on, such as "
                          "127.0.0.1 or 0.0.0.0"),
    ("TRUSTED_PROXY_HOPS", "1.5", "TRUSTED_PROXY_HOPS is malformed: expected a whole number"),
])
def test_malformed_serving_variables_are_one_line_each(name, value, problem):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**BASE, name: value})
    assert raised.value.problems == (problem,)


def test_every_problem_is_reported_at_once_in_reading_order():
    env = {"TWILIO_AUTH_TOKEN": "auth-token-secret", "LOG_LEVEL": "LOUD",
           "WEB_CONCURRENCY": "two", "GUNICORN_CONNECTIONS": "lots"}
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert raised.value.problems == (
        "TWILIO_ACCOUNT_SID is required but not set",
        "RELAY_API_TOKENS is required but not set",
        "LOG_LEVEL is malformed: expected DEBUG, INFO, WARNING, ERROR or CRITICAL",
        "WEB_CONCURRENCY is malformed: expected a whole number",
        "GUNICORN_CONNECTIONS is malformed: expected a whole number",
    )


@pytest.mark.parametrize("platform, expected", [
    ({}, None),
    ({"RENDER_EXTERNAL_URL": "https://callrelay.onrender.com"}, "https://callrelay.onrender.com"),
    ({"HEROKU_APP_DEFAULT_DOMAIN_NAME": "callrelay-4a1b2c3d4e5f.herokuapp.com"},
     "https://callrelay-4a1b2c3d4e5f.herokuapp.com"),
    # PUBLIC_BASE_URL, when set, wins over what the platform says.
    ({"PUBLIC_BASE_URL": "https://relay.example.com/", "RENDER_EXTERNAL_URL": "https://x.onrender.com",
      "HEROKU_APP_DEFAULT_DOMAIN_NAME": "x.herokuapp.com"}, "https://relay.example.com"),
])
def test_public_base_url_defaults_to_the_platforms_own_url(platform, expected):
    assert Settings.from_env({**BASE, **platform}).public_base_url == expected


@pytest.mark.parametrize("name, value", [
    ("HEROKU_APP_DEFAULT_DOMAIN_NAME", "https://x.herokuapp.com"),
    ("RENDER_EXTERNAL_URL", "callrelay.onrender.com"),
])
def test_a_malformed_platform_url_is_named(name, value):
    with pytest.raises(ConfigError, match=f"^{name} is malformed"):
        Settings.from_env({**BASE, name: value})


def test_a_malformed_public_base_url_is_not_replaced_by_the_platforms():
    with pytest.raises(ConfigError, match=r"^PUBLIC_BASE_URL is malformed"):
        Settings.from_env({**BASE, "PUBLIC_BASE_URL": "relay.example.com",
                           "RENDER_EXTERNAL_URL": "https://callrelay.onrender.com"})


def test_redis_topology_comes_from_its_variables():
    redis = {**BASE, "REDIS_URL": "redis://:pw@r:6379/2"}
    assert Settings.from_env(redis).redis_topology == RedisTopology()
    cluster = Settings.from_env({**redis, "REDIS_CLUSTER": "true", "REDIS_MIN_REPLICAS": "1"})
    assert cluster.redis_topology == RedisTopology("cluster", min_replicas=1)
    sentinel = Settings.from_env({**redis, "REDIS_SENTINELS": "s1:26379, [::1]:26380",
                                  "REDIS_SENTINEL_MASTER": "mymaster"})
    assert sentinel.redis_topology == RedisTopology(
        "sentinel", (("s1", 26379), ("::1", 26380)), "mymaster")


@pytest.mark.parametrize("env, line", [
    ({"REDIS_CLUSTER": "true"},
     "REDIS_CLUSTER is set but the store is not Redis: set STORE_URL (or REDIS_URL) to a "
     "redis:// or rediss:// URL"),
    ({"REDIS_MIN_REPLICAS": "1", "DATABASE_URL": "postgres://u:pw@db/d"},
     "REDIS_MIN_REPLICAS is set but the store is not Redis: set STORE_URL (or REDIS_URL) to a "
     "redis:// or rediss:// URL"),
    ({"REDIS_URL": "redis://r", "REDIS_SENTINELS": "s1:26379"},
     "REDIS_SENTINELS and REDIS_SENTINEL_MASTER must be set together"),
    ({"REDIS_URL": "redis://r", "REDIS_SENTINEL_MASTER": "mymaster"},
     "REDIS_SENTINELS and REDIS_SENTINEL_MASTER must be set together"),
    ({"REDIS_URL": "redis://r", "REDIS_SENTINELS": "s1", "REDIS_SENTINEL_MASTER": "m"},
     "REDIS_SENTINELS is malformed: expected host:port, got 's1'"),
    ({"REDIS_URL": "redis://r", "REDIS_CLUSTER": "yes", "REDIS_SENTINELS": "s1:1",
      "REDIS_SENTINEL_MASTER": "m"},
     "REDIS_CLUSTER and REDIS_SENTINELS cannot both be set: a cluster fails over by itself"),
    ({"REDIS_URL": "redis://r", "REDIS_MIN_REPLICAS": "-1"},
     "REDIS_MIN_REPLICAS is malformed: expected a whole number"),
    ({"REDIS_URL": "redis://r", "REDIS_CLUSTER": "maybe"},
     "REDIS_CLUSTER is malformed: expected on or off"),
])
def test_a_redis_topology_that_cannot_work_is_one_line(env, line):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**BASE, **env})
    assert raised.value.problems == (line,)


def test_tombstone_retention_sets_the_floor_but_never_below_the_timestamp_guard():
    assert Settings.from_env(BASE).retention.tombstone_s == 7 * 86400
    day = Settings.from_env({**BASE, "TOMBSTONE_RETENTION_S": "86400"})
    assert day.retention.tombstone_s == 86400
    least = Settings.from_env({**BASE, "TOMBSTONE_RETENTION_S": "60"})
    assert least.retention.tombstone_s == 2 * 14400 + 3600  # 2 x MAX_CALL_DURATION_S + 1 h
    with pytest.raises(ConfigError, match=r"^TOMBSTONE_RETENTION_S is malformed"):
        Settings.from_env({**BASE, "TOMBSTONE_RETENTION_S": "a week"})
