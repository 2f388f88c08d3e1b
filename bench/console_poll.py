"""What an open console costs, roughly: `python -m bench.console_poll`.

A callback costs it nothing (tests/http/test_console_cost.py shows the same store calls with the
console on, off or watched); its cost is the polls of open pages. In one process, on a SQLite
file with N live calls of two legs each: a calls page's poll (GET /console/api/calls), the
internal API's GET /calls for comparison, a call page's poll, and a status callback with the
console on and off. Medians of milliseconds per request; a shared machine makes them rough.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator

from app import create_app
from config.settings import Settings
from services.legs.model import LegEvent

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-auth-token-not-a-secret"
TOKEN = "bench-relay-token-0123456789"
BASE = "https://relay.example.com"


def new_sid() -> str:
    return "CA" + secrets.token_hex(16)


def app_with_calls(folder: Path, calls: int, console: bool) -> tuple[FlaskClient, str]:
    """A callrelay on a fresh SQLite file holding `calls` live calls; one call's SID."""
    settings = Settings.from_env({
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "RELAY_API_TOKENS": TOKEN, "PUBLIC_BASE_URL": BASE, "LOG_LEVEL": "WARNING",
        "TWILIO_API_BASE_URL": "http://127.0.0.1:9", "CONSOLE_ENABLED": str(console).lower(),
        "STORE_URL": f"sqlite:///{folder}/callrelay.sqlite3"})
    app = create_app(settings)
    legs = app.extensions["callrelay.store"].legs
    parent = ""
    for n in range(calls):
        parent, child = new_sid(), new_sid()
        legs.apply(LegEvent(parent, "ringing", from_=f"client:user{n}", to="+15005550006",
                            direction="inbound"))
        legs.apply(LegEvent(child, "in-progress", parent_sid=parent, from_=f"client:user{n}",
                            to="+15005550006", direction="outbound-dial"))
    return app.test_client(), parent


def sign_in(client: FlaskClient) -> None:
    form = client.get("/console/login", base_url=BASE).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    client.post("/console/login", base_url=BASE, headers={"Origin": BASE},
                data={"csrf_token": csrf.group(1), "token": TOKEN})


def median_ms(request: Callable[[], object], rounds: int) -> float:
    request()  # warm
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        request()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)


def callback(client: FlaskClient) -> Callable[[], object]:
    """A status callback for a new child leg, signed as Twilio signs it."""
    validator = RequestValidator(AUTH_TOKEN)

    def post() -> object:
        params = {"CallSid": new_sid(), "ParentCallSid": new_sid(), "CallStatus": "ringing",
                  "AccountSid": ACCOUNT_SID, "From": "+15005550006", "To": "client:alice"}
        signature = validator.compute_signature(BASE + "/twilio/status", params)
        return client.post("/twilio/status", data=params,
                           headers={"X-Twilio-Signature": signature})

    return post


def measure(calls: int, rounds: int) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory() as on_dir, tempfile.TemporaryDirectory() as off_dir:
        on, call_sid = app_with_calls(Path(on_dir), calls, console=True)
        off, _ = app_with_calls(Path(off_dir), calls, console=False)
        sign_in(on)
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        return {
            "live_calls": calls,
            "calls_page_poll_ms": median_ms(
                lambda: on.get("/console/api/calls", base_url=BASE), rounds),
            "api_get_calls_ms": median_ms(lambda: on.get("/calls", headers=bearer), rounds),
            "call_page_poll_ms": median_ms(
                lambda: on.get(f"/console/api/calls/{call_sid}", base_url=BASE), rounds),
            "callback_console_on_ms": median_ms(callback(on), rounds),
            "callback_console_off_ms": median_ms(callback(off), rounds),
        }


def main() -> None:
    """Print one JSON line per store size."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    for calls in args.calls:
        print(json.dumps(measure(calls, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
