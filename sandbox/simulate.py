"""Play a Voice SDK call against callrelay as Twilio would: signed webhooks, in order, following
callrelay's TwiML (what it dials decides which child leg rings, if any).

    python -m sandbox.simulate --hold        # the call stays live until Enter or Ctrl-C
    python -m sandbox.simulate --scenario conference --hold   # two SDK users and a phone

Reads TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL from the environment or a .env
in the working directory. Signatures cover PUBLIC_BASE_URL + path, as callrelay validates them.
The conference's SDK users dial in with tickets minted with CONFERENCE_TICKET_SECRET, as your
backend would mint them. Exits 1 when callrelay refuses a webhook, or its TwiML connects the
call to nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import requests
from dotenv import find_dotenv, load_dotenv
from twilio.request_validator import RequestValidator

from sandbox.calls import (
    Call,
    Step,
    dialled_call,
    parent_ends,
    phone_calls_sdk,
    sdk_calls_phone,
    sdk_calls_sdk,
)
from sandbox.conference import ConferenceCall, conference_call
from sandbox.twiml import Dialled, NotDialled, read_twiml

Script = Call | ConferenceCall
DEFAULT_NUMBER = "+14155552671"  # allowed by a US caller ID's default policy
SCENARIOS: dict[str, Callable[[str, str, str], Script]] = {
    "sdk-to-phone": lambda sid, who, to: sdk_calls_phone(sid, identity=who, number=to),
    "phone-to-sdk": lambda sid, who, to: phone_calls_sdk(sid, identity=who),
    "sdk-to-sdk": lambda sid, who, to: sdk_calls_sdk(sid, caller=who),
    "unanswered": lambda sid, who, to: sdk_calls_phone(sid, identity=who, number=to,
                                                       answered=False),
    "conference": lambda sid, who, to: conference_call(
        sid, identities=(who, "alice" if who == "bob" else "bob")),
}
DIALLING = ("sdk-to-phone", "unanswered")  # the scenarios whose --to is a phone number
LIVE_MARKER = "call is live"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class SimulationFailed(Exception):
    """callrelay answered a webhook with something other than 2xx, or connected nothing."""


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
                        "phone-to-sdk, whom callrelay's TwiML must ring, INBOUND_CLIENT_IDENTITY "
                        "by default; for conference, the first of two SDK users, the other "
                        "being bob)")
    parser.add_argument("--to", default=DEFAULT_NUMBER, help="the number the SDK dials in "
                        f"sdk-to-phone and unanswered (default {DEFAULT_NUMBER})")
    parser.add_argument("--hold", action="store_true", help="stop once the call is answered, "
                        "until Enter or Ctrl-C, then hang up")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between webhooks")
    parser.add_argument("--account-sid", default=env.get("TWILIO_ACCOUNT_SID"))
    parser.add_argument("--auth-token", default=env.get("TWILIO_AUTH_TOKEN"))
    parser.add_argument("--ticket-secret", default=env.get("CONFERENCE_TICKET_SECRET"),
                        help="mints the conference join tickets (default: "
                        "CONFERENCE_TICKET_SECRET; without one, no tickets are sent)")
    return parser


def _post(step: Step, url: str, public_base: str, auth_token: str,
          http: requests.Session) -> requests.Response:
    """One signed form POST, printed with its answer; SimulationFailed unless it is 2xx."""
    signature = RequestValidator(auth_token).compute_signature(public_base + step.path,
                                                               step.params)
    answer = http.post(url + step.path, data=step.params, timeout=15,
                       headers={"X-Twilio-Signature": signature})
    sid = step.params.get("CallSid") or step.params.get("ConferenceSid", "")
    print(f"  {answer.status_code}  {step.path:<18} {sid}  {step.note}", flush=True)
    if not 200 <= answer.status_code < 300:
        hint = (" (check that TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL match callrelay's)"
                if answer.status_code == 403 else "")
        raise SimulationFailed(f"callrelay answered {answer.status_code}{hint}: "
                               f"{answer.text[:300]}")
    return answer


def _twiml(answer: requests.Response) -> Dialled | NotDialled:
    try:
        said = read_twiml(answer.text)
    except ValueError as exc:
        raise SimulationFailed(f"callrelay's Voice URL answer is not TwiML: {exc}") from None
    print(f"{'':<25}callrelay's TwiML {said.describe()}", flush=True)
    return said


def play(steps: list[Step], url: str, public_base: str, auth_token: str, pause: float,
         http: requests.Session) -> None:
    """Send each step as a signed form POST and print its answer; raise on the first non-2xx,
    or on a Voice URL answer that connects nothing."""
    for i, step in enumerate(steps):
        if i and pause > 0:
            time.sleep(pause)
        answer = _post(step, url, public_base, auth_token, http)
        if step.path == "/twilio/voice" and isinstance(_twiml(answer), NotDialled):
            raise SimulationFailed(f"callrelay connected {step.params['From']} to nothing "
                                   f"(To={step.params['To']})")


def answer_call(call: Call, url: str, public_base: str, auth_token: str, pause: float,
                http: requests.Session, expect_to: str | None = None) -> Call:
    """The Voice URL request, then the child leg callrelay's TwiML dials, as Twilio would
    report it (to the TwiML's statusCallback, for its statusCallbackEvent); the call played.
    `expect_to`: the child's `To` the TwiML must dial."""
    voice = call.answer[0]
    said = _twiml(_post(voice, url, public_base, auth_token, http))
    if isinstance(said, NotDialled):
        # Twilio plays the <Say>, hangs up, and reports the parent's end.
        play([parent_ends(voice, "the caller's leg ends: nothing was dialled")], url,
             public_base, auth_token, pause, http)
        raise SimulationFailed(_not_connected(voice, said))
    if said.noun == "Conference":
        raise SimulationFailed(f"callrelay put this call in conference {said.target!r}; "
                               "use --scenario conference")
    if expect_to is not None and said.to != expect_to:
        raise SimulationFailed(f"callrelay's TwiML rings {said.to}, not {expect_to}")
    caller = voice.params["From"]
    if said.noun == "Number" and caller.startswith("client:") and not said.caller_id:
        raise SimulationFailed(f"callrelay dials {said.target} without a callerId: Twilio "
                               "cannot call a phone from a Voice SDK without one; set "
                               "TWILIO_CALLER_ID to a number of your Twilio account")
    if said.callback_base not in (None, public_base):
        print(f"{'':<25}note: its statusCallback goes to {said.callback_base}, not "
              f"{public_base}: Twilio would post there", flush=True)
    played = dialled_call(voice.params["AccountSid"], voice, said.to,
                          answered=not call.kind.endswith("-unanswered"),
                          callback_path=said.callback_path or "/twilio/status",
                          events=said.events if said.callback_path else frozenset())
    if pause > 0:
        time.sleep(pause)
    play(played.answer[1:], url, public_base, auth_token, pause, http)
    return played


def _not_connected(voice: Step, said: NotDialled) -> str:
    """Why callrelay's TwiML dialled nothing, and what usually causes it."""
    caller, to = voice.params["From"], voice.params["To"]
    why = f"callrelay's TwiML dials nothing for {caller} calling {to or '(no To)'}"
    if said.said:
        why += f": it says \"{said.said}\"" + (" and hangs up" if said.hangs_up else "")
    if not caller.startswith("client:"):
        return why + ". A phone calling the Twilio number rings INBOUND_CLIENT_IDENTITY: set it."
    return (why + ". The dial policy refused the destination: a phone number needs "
            "TWILIO_CALLER_ID (no number is dialled without one) and a DIAL_ALLOW that admits "
            "it (README: Dial policy); --to picks another number. callrelay's log has a "
            "'dial refused' line with the reason.")


def notify_hint(url: str, call: Script) -> str:
    """A curl command, ready to paste, that sends a message to the call's SDK leg(s)."""
    body = json.dumps(call.notify_body())
    env_file = find_dotenv(usecwd=True)
    if urlsplit(url).hostname in LOCAL_HOSTS and env_file:
        where = ".env" if Path(env_file) == Path.cwd() / ".env" else env_file
        token = ("  # RELAY_TOKEN is one of RELAY_API_TOKENS; scripts/run wrote one into .env:\n"
                 f"  export RELAY_TOKEN=$(sed -n 's/^RELAY_API_TOKENS=\\([^,]*\\).*/\\1/p' "
                 f"{where})\n")
    else:  # a deployment: this machine's .env, if any, holds another token
        token = ("  # First set RELAY_TOKEN to one of the deployment's RELAY_API_TOKENS\n"
                 "  # (heroku config:get RELAY_API_TOKENS -a <app>, or Render's Environment "
                 "page).\n")
    return (token + f"  curl -s -X POST {url}/notify -H \"Authorization: Bearer $RELAY_TOKEN\""
            f" \\\n    -H 'Content-Type: application/json' -d '{body}'")


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
    """Run one scenario; exit 0 when every webhook was accepted and the call connected."""
    load_dotenv(find_dotenv(usecwd=True), override=False)
    env = dict(os.environ)
    parser = _parser(env)
    args = parser.parse_args(argv)
    if not args.account_sid or not args.auth_token:
        parser.error("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are needed (environment, .env, "
                     "or --account-sid/--auth-token)")
    if args.to != DEFAULT_NUMBER and args.scenario not in DIALLING:
        parser.error(f"--to applies to {' and '.join(DIALLING)} only")
    url = args.url.rstrip("/")
    public_base = (args.public_base_url or url).rstrip("/")
    call = SCENARIOS[args.scenario](args.account_sid, args.identity or "alice", args.to)
    if isinstance(call, ConferenceCall) and args.ticket_secret:
        call = call.with_tickets(args.ticket_secret)
    print(f"callrelay {url}, signing for {public_base}\nscenario  {args.scenario}", flush=True)
    with requests.Session() as http:
        try:
            if isinstance(call, Call):
                expect = (f"client:{args.identity}"
                          if args.identity and args.scenario == "phone-to-sdk" else None)
                call = answer_call(call, url, public_base, args.auth_token, args.pause, http,
                                   expect)
            else:
                play(call.answer, url, public_base, args.auth_token, args.pause, http)
            print("\n".join(f"{name:<9} {sid}" for name, sid in call.roles()), flush=True)
            if args.hold and not call.kind.endswith("-unanswered"):
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
