"""FORWARD_*: where SDK messages (and leg updates) go, signed as Standard Webhooks."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from config.reader import EnvReader


@dataclass(frozen=True)
class ForwardingSettings:
    """FORWARD_*: where SDK messages (and leg updates) go, signed as Standard Webhooks."""

    url: str | None = None
    # The current secret first, then any being rotated out. Each one signs every event, so a
    # backend holding any of them verifies (docs/forwarding.md, "Rotating the secret").
    secrets: tuple[str, ...] = field(default=(), repr=False)
    events: frozenset[str] = frozenset({"messages"})
    max_attempts: int = 10
    subscribe_messages: bool = False

    @property
    def secret(self) -> str | None:
        """The current secret (the first listed), or None when there is none."""
        return self.secrets[0] if self.secrets else None

    @property
    def enabled(self) -> bool:
        """True when there is somewhere to forward events to."""
        return bool(self.url and self.secrets)

    @property
    def url_secrets(self) -> tuple[str, ...]:
        """What FORWARD_URL may carry as credentials: its password and query values."""
        if not self.url:
            return ()
        parts = urlsplit(self.url)
        return (*([parts.password] if parts.password else []),
                *(value for _, value in parse_qsl(parts.query) if value))


def read_forwarding(reader: EnvReader) -> ForwardingSettings:
    """FORWARD_URL, FORWARD_SECRET, FORWARD_EVENTS, FORWARD_MAX_ATTEMPTS, SUBSCRIBE_MESSAGES."""
    url, secrets = reader.url("FORWARD_URL"), _read_secrets(reader)
    if url and not secrets and reader.optional("FORWARD_SECRET") is None:
        reader.problem("FORWARD_SECRET is required when FORWARD_URL is set "
                       "(whsec_ followed by base64)")
    kinds = {k.strip() for k in (reader.optional("FORWARD_EVENTS") or "messages").split(",")}
    kinds.discard("")
    if not kinds or not kinds <= {"messages", "legs"}:
        reader.problem("FORWARD_EVENTS is malformed: expected messages, legs or messages,legs")
        kinds = {"messages"}
    attempts = reader.whole("FORWARD_MAX_ATTEMPTS", 10, minimum=1)
    subscribe = reader.flag("SUBSCRIBE_MESSAGES")
    if subscribe is None:  # on by default when there is somewhere to forward messages to
        subscribe = bool(url) and "messages" in kinds
    if subscribe and not url:
        reader.problem("SUBSCRIBE_MESSAGES is on but FORWARD_URL is not set: the messages "
                       "would have nowhere to go")
    return ForwardingSettings(url=url, secrets=secrets, events=frozenset(kinds),
                              max_attempts=attempts, subscribe_messages=subscribe)


def _read_secrets(reader: EnvReader) -> tuple[str, ...]:
    """FORWARD_SECRET: one secret, or several comma-separated during a rotation (current
    first); each malformed one is a problem named by its position, never by its value."""
    value = reader.optional("FORWARD_SECRET")
    if value is None:
        return ()
    listed = [s.strip() for s in value.split(",")]
    bad = [str(n) for n, secret in enumerate(listed, 1) if not _whsec_valid(secret)]
    if bad:
        which = "" if len(listed) == 1 else \
            f" (secret {', '.join(bad)} of the {len(listed)} listed)"
        reader.problem(f"FORWARD_SECRET is malformed{which}: expected whsec_ followed by the "
                       "base64 of at least 16 random bytes, several separated by commas "
                       "(the current one first)")
        return ()
    if len(set(listed)) != len(listed):
        reader.problem("FORWARD_SECRET is malformed: a secret is listed twice")
        return ()
    return tuple(listed)


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
