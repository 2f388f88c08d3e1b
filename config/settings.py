"""Settings: read once from the environment, validated, frozen. No secret has a default."""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import phonenumbers
from dotenv import load_dotenv

from services.legs.rules import Retention
from services.store.url import parse_store_url

ACCOUNT_SID_RE = re.compile(r"^AC[0-9a-fA-F]{32}$")
API_KEY_RE = re.compile(r"^SK[0-9a-fA-F]{32}$")
DEFAULT_STORE_URL = "sqlite:///data/callrelay.sqlite3"
E164_RE = re.compile(r"\+[1-9][0-9]{6,14}")
DIAL_PREFIX_RE = re.compile(r"\*|\+[1-9][0-9]{0,14}")
HOSTNAME_RE = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
                         r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


class ConfigError(Exception):
    """A required variable is missing or malformed; the message names it in one line."""


@dataclass(frozen=True)
class ForwardingSettings:
    """FORWARD_*: where SDK messages (and leg updates) go, signed as Standard Webhooks."""

    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    events: frozenset[str] = frozenset({"messages"})
    max_attempts: int = 10
    subscribe_messages: bool = False

    @property
    def enabled(self) -> bool:
        """True when there is somewhere to forward events to."""
        return bool(self.url and self.secret)


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
    public_base_url: str | None = None
    trusted_proxy_hops: int = 1
    store_url: str = DEFAULT_STORE_URL
    twilio_caller_id: str | None = None
    inbound_client_identity: str | None = None
    # Dial policy (toll fraud): E.164 prefixes an SDK may dial ("*": any) and SIP domains.
    dial_allow: tuple[str, ...] = ()
    dial_sip_domains: frozenset[str] = frozenset()
    log_level: str = "INFO"
    twilio_timeout_s: float = 10.0
    notify_deadline_s: float = 15.0
    leg_retention_s: float = 3600.0
    max_call_duration_s: float = 4 * 3600.0
    forwarding: ForwardingSettings = field(default_factory=ForwardingSettings)

    @property
    def secrets(self) -> tuple[str | None, ...]:
        """Every secret callrelay holds: none of them may reach a log line."""
        return (self.twilio_auth_token, self.twilio_api_secret, self.twilio_webhook_secret,
                self.forwarding.secret, *self.relay_api_tokens)

    @property
    def retention(self) -> Retention:
        """How long legs (and the tombstones of ended legs) are kept."""
        return Retention(leg_retention_s=self.leg_retention_s,
                         max_call_duration_s=self.max_call_duration_s)

    @property
    def rest_credentials(self) -> tuple[str, str]:
        """(username, password) for Twilio's REST API: the API key when given."""
        if self.twilio_api_key and self.twilio_api_secret:
            return self.twilio_api_key, self.twilio_api_secret
        return self.twilio_account_sid, self.twilio_auth_token

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: os.environ); raise ConfigError on the first fault."""
        if env is None:
            # Development convenience: a .env in the working directory; real variables win.
            load_dotenv(override=False)
            env = os.environ
        reader = _Reader(env)
        api_key = reader.optional("TWILIO_API_KEY")
        api_secret = reader.optional("TWILIO_API_SECRET")
        if api_key and not API_KEY_RE.match(api_key):
            raise ConfigError("TWILIO_API_KEY is malformed: expected SK followed by 32 hex digits")
        if bool(api_key) != bool(api_secret):
            raise ConfigError("TWILIO_API_KEY and TWILIO_API_SECRET must be set together")
        tokens = tuple(t.strip() for t in reader.required("RELAY_API_TOKENS").split(",")
                       if t.strip())
        if not tokens or any(len(t) < 16 for t in tokens):
            raise ConfigError("RELAY_API_TOKENS is malformed: comma-separated tokens of at "
                              "least 16 characters each")
        return cls(
            twilio_account_sid=reader.required("TWILIO_ACCOUNT_SID", ACCOUNT_SID_RE,
                                               "AC followed by 32 hex digits"),
            twilio_auth_token=reader.required("TWILIO_AUTH_TOKEN"),
            relay_api_tokens=tokens,
            twilio_api_key=api_key,
            twilio_api_secret=api_secret,
            twilio_api_base_url=reader.url("TWILIO_API_BASE_URL") or cls.twilio_api_base_url,
            twilio_webhook_secret=reader.optional("TWILIO_WEBHOOK_SECRET"),
            public_base_url=reader.url("PUBLIC_BASE_URL"),
            trusted_proxy_hops=int(reader.number("TRUSTED_PROXY_HOPS", 1, minimum=0)),
            store_url=_store_url(reader),
            twilio_caller_id=reader.optional("TWILIO_CALLER_ID"),
            inbound_client_identity=reader.optional("INBOUND_CLIENT_IDENTITY"),
            **_dialling(reader),
            log_level=_log_level(reader),
            twilio_timeout_s=reader.number("TWILIO_TIMEOUT_S", 10.0, minimum=0.1),
            notify_deadline_s=reader.number("NOTIFY_DEADLINE_S", 15.0, minimum=0.1),
            leg_retention_s=reader.number("LEG_RETENTION_S", 3600.0, minimum=1),
            max_call_duration_s=reader.number("MAX_CALL_DURATION_S", 4 * 3600.0, minimum=60),
            forwarding=_forwarding(reader),
        )


def _store_url(reader: _Reader) -> str:
    url = reader.optional("STORE_URL") or reader.optional("REDIS_URL") or DEFAULT_STORE_URL
    try:
        parse_store_url(url)
    except ValueError as exc:
        name = "STORE_URL" if reader.optional("STORE_URL") else "REDIS_URL"
        raise ConfigError(f"{name} is malformed: {exc}") from None
    verify = reader.flag("REDIS_TLS_VERIFY")
    if url.startswith("rediss://") and verify is False:
        # Heroku's Key-Value Store serves TLS with a self-signed certificate, and sets
        # REDIS_URL itself (rotating it), so the URL cannot carry the option.
        url += ("&" if "?" in url else "?") + "ssl_cert_reqs=none&ssl_check_hostname=false"
    return url


def _forwarding(reader: _Reader) -> ForwardingSettings:
    """FORWARD_URL, FORWARD_SECRET, FORWARD_EVENTS, FORWARD_MAX_ATTEMPTS, SUBSCRIBE_MESSAGES."""
    url, secret = reader.url("FORWARD_URL"), reader.optional("FORWARD_SECRET")
    if url and not secret:
        raise ConfigError("FORWARD_SECRET is required when FORWARD_URL is set "
                          "(whsec_ followed by base64)")
    if secret and not _whsec_valid(secret):
        raise ConfigError("FORWARD_SECRET is malformed: expected whsec_ followed by the "
                          "base64 of at least 16 random bytes")
    kinds = {k.strip() for k in (reader.optional("FORWARD_EVENTS") or "messages").split(",")}
    kinds.discard("")
    if not kinds or not kinds <= {"messages", "legs"}:
        raise ConfigError("FORWARD_EVENTS is malformed: expected messages, legs or "
                          "messages,legs")
    attempts = reader.number("FORWARD_MAX_ATTEMPTS", 10, minimum=1)
    if attempts != int(attempts):
        raise ConfigError("FORWARD_MAX_ATTEMPTS is malformed: expected a whole number")
    subscribe = reader.flag("SUBSCRIBE_MESSAGES")
    if subscribe is None:  # on by default when there is somewhere to forward messages to
        subscribe = bool(url) and "messages" in kinds
    if subscribe and not url:
        raise ConfigError("SUBSCRIBE_MESSAGES is on but FORWARD_URL is not set: the messages "
                          "would have nowhere to go")
    return ForwardingSettings(url=url, secret=secret, events=frozenset(kinds),
                              max_attempts=int(attempts), subscribe_messages=subscribe)


def _whsec_valid(secret: str) -> bool:
    """A Standard Webhooks secret: whsec_ then base64 (padding optional) of 16+ bytes."""
    if not secret.startswith("whsec_"):
        return False
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(key) >= 16


def _dialling(reader: _Reader) -> dict[str, Any]:
    """DIAL_ALLOW (default: TWILIO_CALLER_ID's country calling code; none without one) and
    DIAL_SIP_DOMAINS."""
    caller_id = reader.optional("TWILIO_CALLER_ID")
    code = _calling_code(caller_id) if caller_id else None
    allow = reader.csv("DIAL_ALLOW", DIAL_PREFIX_RE, "comma-separated E.164 prefixes such as "
                       "+1,+44, or *")
    if allow is None:
        allow = (f"+{code}",) if code else ()
    domains = reader.csv("DIAL_SIP_DOMAINS", HOSTNAME_RE, "comma-separated domain names such "
                         "as example.sip.twilio.com", lower=True)
    return {"dial_allow": allow, "dial_sip_domains": frozenset(domains or ())}


def _calling_code(caller_id: str) -> int:
    """The country calling code of TWILIO_CALLER_ID (ConfigError if it is no E.164 number)."""
    try:
        code = E164_RE.fullmatch(caller_id) and phonenumbers.parse(caller_id).country_code
        if code:
            return code
    except phonenumbers.NumberParseException:
        pass
    raise ConfigError("TWILIO_CALLER_ID is malformed: expected an E.164 number of your Twilio "
                      "account, such as +15005550006")


def _log_level(reader: _Reader) -> str:
    level = (reader.optional("LOG_LEVEL") or "INFO").upper()
    if level not in logging.getLevelNamesMapping():
        raise ConfigError("LOG_LEVEL is malformed: expected DEBUG, INFO, WARNING, ERROR or "
                          "CRITICAL")
    return level


class _Reader:
    """Reads variables, treating empty values as unset, with errors that name the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def optional(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def required(self, name: str, pattern: re.Pattern[str] | None = None,
                 expected: str = "") -> str:
        value = self.optional(name)
        if value is None:
            raise ConfigError(f"{name} is required but not set")
        if pattern is not None and not pattern.match(value):
            raise ConfigError(f"{name} is malformed: expected {expected}")
        return value

    def url(self, name: str) -> str | None:
        value = self.optional(name)
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"{name} is malformed: expected an http(s):// URL")
        return value.rstrip("/")

    def csv(self, name: str, item: re.Pattern[str], expected: str,
             lower: bool = False) -> tuple[str, ...] | None:
        """A comma-separated list whose every item matches `item`, or None when unset."""
        value = self.optional(name)
        if value is None:
            return None
        items = tuple(i.strip().lower() if lower else i.strip() for i in value.split(","))
        items = tuple(i for i in items if i)
        if not items or not all(item.fullmatch(i) for i in items):
            raise ConfigError(f"{name} is malformed: expected {expected}")
        return items

    def flag(self, name: str) -> bool | None:
        """An on/off switch, or None when unset."""
        value = (self.optional(name) or "").lower()
        if not value:
            return None
        if value not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"{name} is malformed: expected on or off")
        return value in ("on", "true", "1", "yes")

    def number(self, name: str, default: float, minimum: float) -> float:
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name} is malformed: expected a number") from None
        if number < minimum:
            raise ConfigError(f"{name} is malformed: expected at least {minimum:g}")
        return number
