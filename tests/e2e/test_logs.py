"""Logs of full simulated calls under gunicorn: JSON lines only, and nothing that must not leak."""

from __future__ import annotations

import json
import subprocess

import pytest
import requests

from sandbox.devtools import RUNTIME_PYTHON, free_port
from sandbox.simulate import SCENARIOS
from tests.e2e.harness import Service
from tests.support.env import AUTH_TOKEN, OLD_RELAY_TOKEN, RELAY_TOKEN, make_env, sandbox_env

pytestmark = pytest.mark.e2e
MARKER = "ZEBRA-CONTENT-9931"
# The numbers sandbox/calls.py dials and calls from, digits only: no form of them may appear.
PHONE_DIGITS = ("4155552671", "5005550006", "5005550001")


def test_every_line_is_json_and_no_secret_number_or_content_leaks(tmp_path, twilio):
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "callrelay.log"
    # Conference joins by ticket: the simulator mints them with the same secret.
    tickets = {"CONFERENCE_TICKET_SECRET": "conference-ticket-secret-for-the-e2e-tests"}
    env = make_env(tmp_path, twilio, PUBLIC_BASE_URL=public, **tickets)
    with Service(env, workers=2, port=port, log_path=log_path) as service:
        for scenario in sorted(SCENARIOS):
            run = subprocess.run([str(RUNTIME_PYTHON), "-m", "sandbox.simulate", "--pause", "0",
                                  "--scenario", scenario], cwd=tmp_path, capture_output=True,
                                 text=True, env=sandbox_env(PUBLIC_BASE_URL=public, **tickets),
                                 timeout=60)
            assert run.returncode == 0, run.stdout + run.stderr
        sim = subprocess.Popen([str(RUNTIME_PYTHON), "-m", "sandbox.simulate", "--pause", "0",
                                "--hold", "--identity", "carol"], cwd=tmp_path, text=True,
                               env=sandbox_env(PUBLIC_BASE_URL=public), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
        assert sim.stdout is not None and sim.stdin is not None
        for line in sim.stdout:  # until the simulator holds the call (or exits: then fail)
            if "call is live" in line:
                break
        else:
            raise AssertionError(f"the simulator ended with {sim.wait()} before the call was live")
        http = requests.Session()

        def notify(body: dict, token: str = RELAY_TOKEN) -> int:
            return http.post(service.url + "/notify", json=body, timeout=10,
                             headers={"Authorization": f"Bearer {token}"}).status_code

        content = {"note": MARKER, "callback": "+15005550006"}
        assert notify({"identity": "carol", "content": content}) == 201
        assert notify({"identity": "carol", "content": content}, token=OLD_RELAY_TOKEN) == 201
        assert notify({"identity": "carol", "content": content}, token=AUTH_TOKEN) == 401
        assert notify({"call_sid": "+15005550006", "content": content}) == 422
        assert notify({"identity": "+15005550006", "content": content}) == 404
        assert http.get(service.url + "/metrics", timeout=10).status_code == 200
        sim.communicate("\n", timeout=30)
        assert sim.returncode == 0
    lines = log_path.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line, stdout and stderr alike
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
    requests_logged = [e for e in entries if e["logger"] == "callrelay.request"]
    assert len(requests_logged) >= 4 * 6 + 5
    assert all("request_id" in e and "duration_ms" in e for e in requests_logged)
    text = "\n".join(lines)
    for forbidden in (RELAY_TOKEN, OLD_RELAY_TOKEN, AUTH_TOKEN, MARKER, *PHONE_DIGITS):
        assert forbidden not in text, forbidden
    assert "Traceback" not in text
