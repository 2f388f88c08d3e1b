"""Who may join which conference: Twilio has no access control on conference names, so whoever
picks `To=conference:<name>` hears that conference and gets every message sent to it.

Closed by default. With a secret, an SDK caller joins only with a `ConferenceTicket` connect
parameter that the app's backend minted: `<expires>.<mac>`, `expires` a Unix time in seconds,
`mac` the unpadded base64url HMAC-SHA256, keyed with the secret, of
`<identity>\\n<conference name>\\n<expires>`. Or open: anyone may join any conference.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

TICKET_PARAM = "ConferenceTicket"
# Seconds, then 43 base64url characters: the 32 bytes of an HMAC-SHA256, unpadded.
_TICKET_RE = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{43})", re.ASCII)
NOT_ALLOWED = "conference_not_allowed"
TICKET_MISSING = "conference_ticket_missing"
TICKET_INVALID = "conference_ticket_invalid"
TICKET_EXPIRED = "conference_ticket_expired"


def ticket_mac(secret: str, identity: str, name: str, expires: str) -> str:
    """The unpadded base64url HMAC-SHA256 a ticket for `identity` and `name` carries."""
    # surrogatepass: whatever a caller's identity holds, it hashes (and matches nothing minted).
    message = f"{identity}\n{name}\n{expires}".encode("utf-8", "surrogatepass")
    digest = hmac.new(secret.encode("utf-8", "surrogatepass"), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class ConferenceAccess:
    """Conference joins: by ticket when `secret` is set, by anyone when `open`, else by none."""

    secret: str | None = field(default=None, repr=False)
    open: bool = False
    clock: Callable[[], float] = time.time

    def refusal(self, identity: str, name: str, ticket: str | None) -> str | None:
        """None when `identity` may join conference `name` with `ticket`; else why not."""
        if self.open:
            return None
        if self.secret is None:
            return NOT_ALLOWED
        if not ticket:
            return TICKET_MISSING
        match = _TICKET_RE.fullmatch(ticket)
        if match is None:
            return TICKET_INVALID
        expires, mac = match.groups()
        expected = ticket_mac(self.secret, identity, name, expires)
        if not hmac.compare_digest(expected.encode(), mac.encode()):
            return TICKET_INVALID  # forged, or minted for another identity or conference
        if int(expires) <= self.clock():
            return TICKET_EXPIRED
        return None
