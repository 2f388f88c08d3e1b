"""Conference join tickets, minted as the app's backend mints them (README, "Conferences").

The backend, which knows the user and mints their Voice SDK access token, decides which
conference they may join and hands the device a ticket to pass as the `ConferenceTicket`
connect parameter. This is the README's Python example, used by the simulator.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


def conference_ticket(secret: str, identity: str, conference: str, ttl_s: int = 300,
                      now: float | None = None) -> str:
    """A ticket letting client `identity` join `conference` for the next `ttl_s` seconds."""
    expires = int(time.time() if now is None else now) + ttl_s
    message = f"{identity}\n{conference}\n{expires}".encode()
    mac = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return f"{expires}." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
