"""Play a scripted Voice SDK call against callrelay as Twilio would: signed webhooks, in order.

    python -m sandbox.simulate --hold        # the call stays live until Enter or Ctrl-C
    python -m sandbox.simulate --scenario conference --hold   # two SDK users and a phone

Reads TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL from the environment or a .env
in the working directory. Signatures cover PUBLIC_BASE_URL + path, as callrelay validates them.
The conference's SDK users dial in with tickets minted with CONFERENCE_TICKET_SECRET, as your
backend would mint them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable

import requests
from dotenv import find_dotenv, load_dotenv
from twilio.request_validator import RequestValidator

from sandbox.calls import Call, Step, phone_calls_sdk, sdk_calls_phone, sdk_calls_sdk
from sandbox.conference import ConferenceCall, conference_call

Script = Call | ConferenceCall
SCENARIOS: dict[str, Callable[[str, str], Script]] = {
    "sdk-to-phone": lambda sid, who: sdk_calls_phone(sid, identity=who),
    "phone-to-sdk": lambda sid, who: phone_calls_sdk(sid, identity=who),
    "sdk-to-sdk": lambda sid, who: sdk_calls_sdk(sid, caller=who),
    "unanswered": lambda sid, who: sdk_calls_phone(sid, identity=who, answered=False),
    "conference": lambda sid, who: conference_call(
        sid, identities=(who, "alice" if who == "bob" else "bob")),
}
LIVE_MARKER = "call is live"


class SimulationFailed(Exception):
    """callrelay answered a webhook with something other than 2xx."""


def _parser(env: dict[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox.simulate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    public = env.get("PUBLIC_BASE_URL") or "http://127.0.0.1:8000"
    parser.add_argument("--url", default=public, help="where callrelay listens (default: "
                        "PUBLIC_BASE_URL, else http://127.0.0.1:8000)")
    parser.add_argument("--public-base-url", default=env.get("PUBLIC_BASE_URL"),
                        help="the URL signatures cover (default: PUBLIC_BASE_URL, else --url)")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="sdk-to-phone")
    parser.add_argument("--identity", help="the Voice SDK client (default: alice; for "
                        "phone-to-sdk, INBOUND_CLIENT_IDENTITY; for conference, the first "
                        "of two SDK users, the other being bob)")
    parser.add_argument("--hold", action="store_true", help="stop once the call is answered, "
                        "until Enter or Ctrl-C, then hang up")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between webhooks")
    parser.add_argument("--account-sid", default=env.get("TWILIO_ACCOUNT_SID"))
    parser.add_argument("--auth-token", default=env.get("TWILIO_AUTH_TOKEN"))
    parser.add_argument("--ticket-secret", default=env.get("CONFERENCE_TICKET_SECRET"),
                        help="mints the conference join tickets (default: "
                        "CONFERENCE_TICKET_SECRET; without one, no tickets are sent)")
    return parser


def play(steps: list[Step], url: str, public_base: str, auth_token: str, pause: float,
         http: requests.Session) -> None:
    """Send each step as a signed form POST and print its answer; raise on the first non-2xx."""
    validator = RequestValidator(auth_token)
    for i, step in enumerate(steps):
        if i and pause > 0:
            time.sleep(pause)
        signature = validator.compute_signature(public_base + step.path, step.params)
        answer = http.post(url + step.path, data=step.params, timeout=15,
                           headers={"X-Twilio-Signature": signature})
        sid = step.params.get("CallSid") or step.params.get("ConferenceSid", "")
        print(f"  {answer.status_code}  {step.path:<18} {sid}  {step.note}", flush=True)
        if not 200 <= answer.status_code < 300:
            hint = (" (check that TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL match callrelay's)"
                    if answer.status_code == 403 else "")
            raise SimulationFailed(f"callrelay answered {answer.status_code}{hint}: "
                                   f"{answer.text[:300]}")


def notify_hint(url: str, call: Script) -> str:
    """A curl command, ready to paste, that sends a message to the call's SDK leg(s)."""
    body = json.dumps(call.notify_body())
    return ("  # RELAY_TOKEN is one of RELAY_API_TOKENS; scripts/run wrote one into .env:\n"
            "  export RELAY_TOKEN=$(sed -n 's/^RELAY_API_TOKENS=\\([^,]*\\).*/\\1/p' .env)\n"
            f"  curl -s -X POST {url}/notify -H \"Authorization: Bearer $RELAY_TOKEN\" \\\n"
            f"    -H 'Content-Type: application/json' -d '{body}'")


def wait_for_hangup() -> None:
    """Return on Enter, Ctrl-C or SIGTERM; without a terminal (stdin at EOF), on a signal only."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if sys.stdin is not None and sys.stdin.readline():
            return
        while True:  # stdin closed: wait for a signal
            time.sleep(3600)
    except KeyboardInterrupt:
        print(flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run one scenario; exit 0 when every webhook was accepted."""
    load_dotenv(find_dotenv(usecwd=True), override=False)
    env = dict(os.environ)
    parser = _parser(env)
    args = parser.parse_args(argv)
    if not args.account_sid or not args.auth_token:
        parser.error("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are needed (environment, .env, "
                     "or --account-sid/--auth-token)")
    url = args.url.rstrip("/")
    public_base = (args.public_base_url or url).rstrip("/")
    default_identity = "alice"
    if args.scenario == "phone-to-sdk":  # callrelay's TwiML rings INBOUND_CLIENT_IDENTITY
        default_identity = env.get("INBOUND_CLIENT_IDENTITY") or default_identity
    call = SCENARIOS[args.scenario](args.account_sid, args.identity or default_identity)
    if isinstance(call, ConferenceCall) and args.ticket_secret:
        call = call.with_tickets(args.ticket_secret)
    print(f"callrelay {url}, signing for {public_base}\nscenario  {call.kind}", flush=True)
    with requests.Session() as http:
        try:
            play(call.answer, url, public_base, args.auth_token, args.pause, http)
            print("\n".join(f"{name:<9} {sid}" for name, sid in call.roles()), flush=True)
            if args.hold and call.kind != "sdk-to-phone-unanswered":
                print(f"{LIVE_MARKER}: send it a message, then press Enter (or Ctrl-C) to hang "
                      f"up\n{notify_hint(url, call)}", flush=True)
                wait_for_hangup()
            elif not args.hold:
                print("(--hold keeps the call live, to send it a message with /notify)",
                      flush=True)
            play(call.hangup, url, public_base, args.auth_token, args.pause, http)
        except (SimulationFailed, requests.RequestException) as exc:
            print(f"simulation failed: {exc}", file=sys.stderr, flush=True)
            return 1
    print("conference ended" if call.kind == "conference" else "call ended", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
