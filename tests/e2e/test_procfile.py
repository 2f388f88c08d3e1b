"""The Procfile command with 3 gunicorn workers: real HTTP, signed webhooks, a restart mid-call."""

from __future__ import annotations

import json
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sandbox.calls import Step, phone_calls_sdk, sdk_calls_phone
from sandbox.devtools import ROOT, deployed_env, free_port, procfile_command
from tests.e2e.harness import Service
from tests.support.env import ACCOUNT_SID, RELAY_TOKEN, make_env, sign

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {RELAY_TOKEN}"}


class HTTPRelay:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.http = requests.Session()

    def webhook(self, step: Step, signature: str | None = None) -> requests.Response:
        url = self.service.url + step.path
        sig = sign(url, step.params) if signature is None else signature
        return self.http.post(url, data=step.params, headers={"X-Twilio-Signature": sig},
                              timeout=10)

    def play(self, steps: list[Step]) -> None:
        for step in steps:
            answer = self.webhook(step)
            assert answer.status_code in (200, 204), (step.note, answer.status_code, answer.text)

    def notify(self, body: dict) -> requests.Response:
        return self.http.post(self.service.url + "/notify", json=body, headers=AUTH, timeout=20)

    def call(self, sid: str) -> dict:
        return self.http.get(f"{self.service.url}/calls/{sid}", headers=AUTH, timeout=10).json()


@pytest.fixture
def service(tmp_path, twilio):
    port_env = Service({}).port
    env = make_env(tmp_path, twilio, PUBLIC_BASE_URL=f"http://127.0.0.1:{port_env}")
    with Service(env, workers=3, port=port_env, log_path=tmp_path / "callrelay.log") as svc:
        yield svc


def test_calls_tracked_and_routed_through_gunicorn_with_a_restart(service, twilio, tmp_path):
    relay = HTTPRelay(service)
    out = sdk_calls_phone(ACCOUNT_SID, identity="alice")
    inc = phone_calls_sdk(ACCOUNT_SID, identity="bob")
    relay.play(out.answer)
    relay.play(inc.answer)

    # Forged and unsigned webhooks change nothing.
    forged = inc.hangup[0]
    assert relay.webhook(forged, signature="bm9wZQ==").status_code == 403
    assert relay.webhook(forged, signature="").status_code == 403

    content = {"event": "hello", "n": 1}
    exact = json.dumps(content, separators=(",", ":"))
    cases = [
        ({"call_sid": out.child_sid, "content": content}, out.parent_sid),
        ({"call_sid": out.parent_sid, "content": content}, out.parent_sid),
        ({"identity": "alice", "content": content}, out.parent_sid),
        ({"call_sid": inc.parent_sid, "content": content}, inc.child_sid),
        ({"call_sid": inc.child_sid, "content": content}, inc.child_sid),
        ({"identity": "bob", "content": content}, inc.child_sid),
        ({"call_sid": inc.child_sid, "leg": "parent", "content": content}, inc.parent_sid),
        ({"call_sid": out.parent_sid, "leg": "child", "content": content}, out.child_sid),
    ]

    def check_routing(round_: int) -> None:
        twilio.reset()
        bodies = [dict(body, idempotency_key=f"r{round_}-{i}") for i, (body, _) in enumerate(cases)]
        # Many requests at once, so that every worker serves some of them.
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(relay.notify, bodies * 3))
        assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
        by_key = {m.idempotency_key: m for m in twilio.messages}
        assert len(twilio.messages) == len(cases)  # the key de-duplicated the repeats
        for i, (body, expected_leg) in enumerate(cases):
            # An identity may name several legs: each gets the caller's key and its own SID.
            key = f"r{round_}-{i}" + (f":{expected_leg}" if "identity" in body else "")
            sent = by_key[key]
            assert (sent.call_sid, sent.content) == (expected_leg, exact)

    check_routing(1)
    # Bad input never reaches Twilio.
    twilio.reset()
    assert relay.notify({"call_sid": "CAnope", "content": {}}).status_code == 422
    assert relay.notify({"identity": "bob", "content": "nope"}).status_code == 422
    assert twilio.requests == []

    service.restart()
    check_routing(2)

    # The calls end; late and duplicated callbacks arrive after a restart.
    relay.play(out.hangup + inc.hangup)
    service.restart()
    relay.play(inc.answer[1:] + out.answer[1:] + inc.hangup)
    for body, _ in cases:
        answer = relay.notify(body)
        assert answer.status_code in (404, 409), (body, answer.text)
    legs = {leg["call_sid"]: leg for leg in relay.call(inc.child_sid)["legs"]}
    assert legs[inc.child_sid]["status"] == "completed"
    log = (tmp_path / "callrelay.log").read_text()
    assert RELAY_TOKEN not in log and "Traceback" not in log


def _procfile_with(tmp_path, twilio, **variables: str) -> subprocess.CompletedProcess[str]:
    env = deployed_env(**{**make_env(tmp_path, twilio), "WEB_CONCURRENCY": "1",
                          "PORT": str(free_port()), **variables})
    return subprocess.run(procfile_command(), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("name, value", [
    ("LOG_LEVEL", "LOUD"), ("DIAL_ALLOW", "1,44"), ("WEB_CONCURRENCY", "two"),
    ("WEB_CONCURRENCY", "0"), ("GUNICORN_CONNECTIONS", "lots"),
])
def test_a_malformed_variable_stops_the_procfile_command_with_one_line(tmp_path, twilio, name,
                                                                     value):
    run = _procfile_with(tmp_path, twilio, **{name: value})
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    (line,) = run.stderr.splitlines()
    assert line.startswith(f"callrelay: configuration error: {name} is malformed: expected ")
    assert "Traceback" not in run.stdout + run.stderr


def test_every_bad_variable_is_named_at_once(tmp_path, twilio):
    run = _procfile_with(tmp_path, twilio, WEB_CONCURRENCY="two", GUNICORN_CONNECTIONS="lots",
                         RELAY_API_TOKENS="")
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "callrelay: configuration error: RELAY_API_TOKENS is required but not set",
        "callrelay: configuration error: WEB_CONCURRENCY is malformed: expected a whole number",
        "callrelay: configuration error: GUNICORN_CONNECTIONS is malformed: expected a whole "
        "number",
    ]


def test_a_store_that_cannot_be_opened_stops_the_master_with_one_line(tmp_path, twilio):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    run = _procfile_with(tmp_path, twilio, STORE_URL=f"sqlite:///{blocker}/callrelay.sqlite3")
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    (line,) = run.stderr.splitlines()
    assert line.startswith("callrelay: the SQLite store cannot be opened: ")
    assert "Traceback" not in run.stdout + run.stderr


def _raw(service: Service, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send bytes as they are (requests would refuse to send them) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


@pytest.mark.parametrize("request_bytes, status, code", [
    (b"NOT HTTP AT ALL\r\n\r\n", "400", "bad_request"),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "414", "uri_too_long"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: y\r\n" * 200 + b"\r\n", "431",
     "request_header_fields_too_large"),
])
def test_requests_gunicorn_refuses_itself_get_a_json_error(service, request_bytes, status, code):
    line, headers, body = _raw(service, request_bytes)
    assert line.split(" ")[1] == status
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"]
    assert "<html" not in body.decode()
