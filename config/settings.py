"""Settings: read once from the environment, validated, frozen. No secret has a default."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from dotenv import load_dotenv

from config.dialling import read_dialling
from config.forwarding import ForwardingSettings, read_forwarding
from config.lookups import read_lookup_budget
from config.reader import ConfigError, EnvReader
from config.serving import ServingSettings, read_public_base_url, read_serving
from config.stores import (
    DEFAULT_POOL_SIZE,
    DEFAULT_STORE_URL,
    read_pool_size,
    read_redis_topology,
    read_store_url,
    store_password,
)
from services.legs.rules import TOMBSTONE_FLOOR_S, Retention
from services.store.redis.topology import RedisTopology
from services.use_cases.lookup_budget import Budget

__all__ = ["ConfigError", "ForwardingSettings", "ServingSettings", "Settings"]

ACCOUNT_SID_RE = re.compile(r"^AC[0-9a-fA-F]{32}$")
# Published in .env.example for the local sandbox: anyone could sign webhooks or mint tickets
# with them, so they are refused anywhere but next to the local Twilio mock.
SANDBOX_SECRETS = frozenset({"sandbox-auth-token-not-a-secret",
                             "sandbox-conference-ticket-secret-not-a-secret"})
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
API_KEY_RE = re.compile(r"^SK[0-9a-fA-F]{32}$")


@dataclass(frozen=True)
class Settings:
    """Everything callrelay reads from its environment."""

    twilio_account_sid: str
    twilio_auth_token: str = field(repr=False)
    relay_api_tokens: tuple[str, ...] = field(repr=False)
    twilio_api_key: str | None = None
    twilio_api_secret: str | None = field(default=None, repr=False)
    twilio_api_base_url: str = "https://api.twilio.com"
    # Secret of a Webhook Rules SharedKey (HMAC-SHA256 signatures); the Auth Token otherwise.
    twilio_webhook_secret: str | None = field(default=None, repr=False)
    # PUBLIC_BASE_URL, or the platform's own URL; None: rebuilt from X-Forwarded-* per request.
    public_base_url: str | None = None
    trusted_proxy_hops: int = 1
    # It may hold a password (DATABASE_URL always does).
    store_url: str = field(default=DEFAULT_STORE_URL, repr=False)
    store_pool_size: int = DEFAULT_POOL_SIZE
    # A Redis store's deployment: one server, a cluster or Sentinel; replicas a write awaits.
    redis_topology: RedisTopology = field(default_factory=RedisTopology)
    twilio_caller_id: str | None = None
    inbound_client_identity: str | None = None
    # Dial policy (toll fraud): E.164 prefixes and ISO region codes an SDK may dial ("*": any)
    # and SIP domains.
    dial_allow: tuple[str, ...] = ()
    dial_sip_domains: frozenset[str] = frozenset()
    # Conference joins: by tickets the app's backend mints with this secret, or open to anyone.
    conference_ticket_secret: str | None = field(default=None, repr=False)
    dial_conferences_open: bool = False
    log_level: str = "INFO"
    twilio_timeout_s: float = 10.0
    notify_deadline_s: float = 15.0
    leg_retention_s: float = 3600.0
    max_call_duration_s: float = 4 * 3600.0
    # The least time an ended leg's (or conference's) SID is remembered as ended.
    tombstone_retention_s: float = TOMBSTONE_FLOOR_S
    # Twilio requests a second (and the burst) that lookups of unknown calls may make.
    lookup_budget: Budget = field(default_factory=Budget)
    # Keep message content in the calls' histories (it may hold personal data).
    message_log_content: bool = False
    forwarding: ForwardingSettings = field(default_factory=ForwardingSettings)
    # The web console at /console (sign-in with a relay token); off: every console route is 404.
    console_enabled: bool = True
    serving: ServingSettings = field(default_factory=ServingSettings)

    @property
    def secrets(self) -> tuple[str | None, ...]:
        """Every secret callrelay holds: none of them may reach a log line."""
        return (self.twilio_auth_token, self.twilio_api_secret, self.twilio_webhook_secret,
                *self.forwarding.secrets, *self.forwarding.url_secrets,
                self.conference_ticket_secret, store_password(self.store_url),
                *self.relay_api_tokens)

    @property
    def retention(self) -> Retention:
        """How long legs (and the tombstones of ended legs) are kept."""
        return Retention(leg_retention_s=self.leg_retention_s,
                         max_call_duration_s=self.max_call_duration_s,
                         tombstone_floor_s=self.tombstone_retention_s)

    @property
    def rest_credentials(self) -> tuple[str, str]:
        """(username, password) for Twilio's REST API: the API key when given."""
        if self.twilio_api_key and self.twilio_api_secret:
            return self.twilio_api_key, self.twilio_api_secret
        return self.twilio_account_sid, self.twilio_auth_token

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: os.environ); raise ConfigError naming every
        missing or malformed variable at once."""
        if env is None:
            # Development convenience: a .env in the working directory; real variables win.
            load_dotenv(override=False)
            env = os.environ
        reader = EnvReader(env)
        store_url = read_store_url(reader)
        api_key = reader.optional("TWILIO_API_KEY")
        api_secret = reader.optional("TWILIO_API_SECRET")
        if api_key and not API_KEY_RE.match(api_key):
            reader.problem("TWILIO_API_KEY is malformed: expected SK followed by 32 hex digits")
        if bool(api_key) != bool(api_secret):
            reader.problem("TWILIO_API_KEY and TWILIO_API_SECRET must be set together")
        settings = cls(
            twilio_account_sid=reader.required("TWILIO_ACCOUNT_SID", ACCOUNT_SID_RE,
                                               "AC followed by 32 hex digits"),
            twilio_auth_token=reader.required("TWILIO_AUTH_TOKEN"),
            relay_api_tokens=_relay_api_tokens(reader),
            twilio_api_key=api_key,
            twilio_api_secret=api_secret,
            twilio_api_base_url=reader.url("TWILIO_API_BASE_URL") or cls.twilio_api_base_url,
            twilio_webhook_secret=reader.optional("TWILIO_WEBHOOK_SECRET"),
            public_base_url=read_public_base_url(reader),
            trusted_proxy_hops=reader.whole("TRUSTED_PROXY_HOPS", 1, minimum=0),
            store_url=store_url,
            store_pool_size=read_pool_size(reader),
            redis_topology=read_redis_topology(reader, store_url),
            inbound_client_identity=reader.optional("INBOUND_CLIENT_IDENTITY"),
            **read_dialling(reader),
            log_level=_log_level(reader),
            twilio_timeout_s=reader.number("TWILIO_TIMEOUT_S", 10.0, minimum=0.1),
            notify_deadline_s=reader.number("NOTIFY_DEADLINE_S", 15.0, minimum=0.1),
            leg_retention_s=reader.number("LEG_RETENTION_S", 3600.0, minimum=1),
            max_call_duration_s=reader.number("MAX_CALL_DURATION_S", 4 * 3600.0, minimum=60),
            tombstone_retention_s=reader.number("TOMBSTONE_RETENTION_S", TOMBSTONE_FLOOR_S,
                                                minimum=60),
            lookup_budget=read_lookup_budget(reader),
            message_log_content=reader.flag("MESSAGE_LOG_CONTENT") or False,
            forwarding=read_forwarding(reader),
            console_enabled=reader.flag("CONSOLE_ENABLED") is not False,
            serving=read_serving(reader),
        )
        _refuse_published_secrets(reader, settings)
        reader.check()
        return settings


def _refuse_published_secrets(reader: EnvReader, settings: Settings) -> None:
    """The sandbox's secrets, published in .env.example, only with the local Twilio mock."""
    api = urlparse(settings.twilio_api_base_url)
    if api.hostname in LOCAL_HOSTS:
        return
    published = {"TWILIO_AUTH_TOKEN": settings.twilio_auth_token,
                 "CONFERENCE_TICKET_SECRET": settings.conference_ticket_secret}
    for name, value in published.items():
        if value in SANDBOX_SECRETS:
            reader.problem(f"{name} is malformed: it is the sandbox's, published in "
                           ".env.example, and works only with TWILIO_API_BASE_URL on this "
                           "machine (127.0.0.1 or localhost); set your own")


def _relay_api_tokens(reader: EnvReader) -> tuple[str, ...]:
    value = reader.required("RELAY_API_TOKENS")
    tokens = tuple(t.strip() for t in value.split(",") if t.strip())
    if value and (not tokens or any(len(t) < 16 for t in tokens)):
        reader.problem("RELAY_API_TOKENS is malformed: comma-separated tokens of at least 16 "
                       "characters each")
    return tokens


def _log_level(reader: EnvReader) -> str:
    level = (reader.optional("LOG_LEVEL") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        reader.problem("LOG_LEVEL is malformed: expected DEBUG, INFO, WARNING, ERROR or "
                       "CRITICAL")
        return "INFO"
    return level
