"""What a test callrelay runs with: fixed credentials, its environment, Twilio's signatures."""

from __future__ import annotations

from typing import Any

from twilio.request_validator import RequestValidator

from sandbox.devtools import ROOT, deployed_env
from sandbox.twilio_mock import TwilioMock

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "test-auth-token-not-a-secret"
RELAY_TOKEN = "relay-token-0123456789abcdef"
OLD_RELAY_TOKEN = "relay-token-rotating-out-0000"
PUBLIC_BASE = "https://relay.example.com"


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send for a form POST to `url`."""
    return RequestValidator(token).compute_signature(url, params)


def make_env(tmp_path: Any, twilio: TwilioMock, **overrides: str) -> dict[str, str]:
    """Environment variables for a callrelay wired to the mock and a fresh SQLite file."""
    env = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "RELAY_API_TOKENS": f"{RELAY_TOKEN},{OLD_RELAY_TOKEN}",
        "TWILIO_API_BASE_URL": twilio.base_url,
        "PUBLIC_BASE_URL": PUBLIC_BASE,
        "STORE_URL": f"sqlite:///{tmp_path}/callrelay.sqlite3",
        "TWILIO_CALLER_ID": "+15005550001",
        "INBOUND_CLIENT_IDENTITY": "bob",
        "TWILIO_TIMEOUT_S": "2",
        "NOTIFY_DEADLINE_S": "4",
    }
    env.update(overrides)
    return env


def sandbox_env(**extra: str) -> dict[str, str]:
    """The environment a developer's .env gives: account, token, public URL (no .env here),
    for the sandbox's tools run with the runtime venv's python."""
    return deployed_env(**{"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
                           "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                           **extra})
