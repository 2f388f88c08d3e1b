"""The README's sandbox: the mock CLI, callrelay via the Procfile, sandbox.simulate, a /notify."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
import requests

from sandbox.devtools import RUNTIME_PYTHON, free_port
from sandbox.simulate import LIVE_MARKER
from tests.e2e.harness import Service
from tests.support.env import RELAY_TOKEN, make_env, sandbox_env

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {RELAY_TOKEN}"}


class Lines:
    """A subprocess whose stdout lines are collected by a thread, to wait for one with a timeout."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, stdin: bool = False):
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, text=True, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None  # here: an assert in the reader thread only warns
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r} in {self.seen}")

    def drain(self, quiet: float = 0.5) -> list[str]:
        """The lines printed since the last wait, until none comes for `quiet` seconds."""
        lines = []
        while True:
            try:
                lines.append(self._queue.get(timeout=quiet))
            except queue.Empty:
                self.seen += lines
                return lines

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def mock_cli(tmp_path) -> Iterator[tuple[Lines, str]]:
    port = free_port()
    mock = Lines([str(RUNTIME_PYTHON), "-m", "sandbox.twilio_mock", "--port", str(port)],
                 sandbox_env(), tmp_path)
    mock.wait_for("twilio mock listening")
    yield mock, f"http://127.0.0.1:{port}"
    mock.stop()


def test_simulated_call_held_live_then_notify_prints_the_exact_content(tmp_path, twilio,
                                                                       mock_cli):
    mock, mock_url = mock_cli
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = make_env(tmp_path, twilio, TWILIO_API_BASE_URL=mock_url, PUBLIC_BASE_URL=public)
    with Service(env, workers=2, port=port, log_path=tmp_path / "callrelay.log") as service:
        sim = Lines([str(RUNTIME_PYTHON), "-m", "sandbox.simulate", "--hold", "--pause", "0",
                     "--scenario", "phone-to-sdk", "--identity", "bob"],
                    sandbox_env(PUBLIC_BASE_URL=public), tmp_path, stdin=True)
        try:
            sdk_sid = sim.wait_for(r"^sdk\s+(CA[0-9a-f]{32}) \(bob\)").group(1)
            sim.wait_for(LIVE_MARKER)
            sim.wait_for(r"curl -s -X POST .*/notify")
            content = {"offer": "héllo", "price": 42}
            answer = requests.post(service.url + "/notify", headers=AUTH, timeout=10,
                                   json={"identity": "bob", "content": content})
            assert answer.status_code == 201, answer.text
            assert answer.json()["messages"][0]["call_sid"] == sdk_sid
            exact = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
            mock.wait_for(re.escape(f"message {sdk_sid} ") + r"KX[0-9a-f]{32} "
                          + re.escape(exact) + "$")
            assert sim.proc.stdin is not None
            sim.proc.stdin.write("\n")
            sim.proc.stdin.flush()
            sim.wait_for("^call ended$")
            assert sim.proc.wait(timeout=10) == 0
        finally:
            sim.stop()
        legs = requests.get(f"{service.url}/calls/{sdk_sid}", headers=AUTH, timeout=10).json()
        assert {leg["status"] for leg in legs["legs"]} == {"completed"}
        late = requests.post(service.url + "/notify", headers=AUTH, timeout=10,
                             json={"call_sid": sdk_sid, "content": {}})
        assert late.status_code == 409


def test_simulator_explains_a_signature_mismatch(tmp_path, twilio):
    port = free_port()
    env = make_env(tmp_path, twilio, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    with Service(env, workers=1, port=port) as service:
        run = subprocess.run([str(RUNTIME_PYTHON), "-m", "sandbox.simulate", "--url", service.url,
                              "--pause", "0"], cwd=tmp_path, capture_output=True, text=True,
                             env=sandbox_env(TWILIO_AUTH_TOKEN="not-the-servers-token",
                                             PUBLIC_BASE_URL=service.url), timeout=60)
    assert run.returncode == 1
    assert "403" in run.stdout and "TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL" in run.stderr


def test_simulated_conference_reaches_both_sdk_users_and_not_the_phone(tmp_path, twilio,
                                                                        mock_cli):
    mock, mock_url = mock_cli
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    # Conference joins need tickets: the simulator mints them with the secret, as a backend.
    secret = {"CONFERENCE_TICKET_SECRET": "conference-ticket-secret-for-the-e2e-tests"}
    env = make_env(tmp_path, twilio, TWILIO_API_BASE_URL=mock_url, PUBLIC_BASE_URL=public,
                   **secret)
    log_path = tmp_path / "callrelay.log"
    with Service(env, workers=2, port=port, log_path=log_path) as service:
        sim = Lines([str(RUNTIME_PYTHON), "-m", "sandbox.simulate", "--hold", "--pause", "0",
                     "--scenario", "conference"], sandbox_env(PUBLIC_BASE_URL=public, **secret),
                    tmp_path, stdin=True)
        try:
            conference = sim.wait_for(r"^conference\s+(CF[0-9a-f]{32}) \(standup\)").group(1)
            sdk = {sim.wait_for(rf"^sdk\s+(CA[0-9a-f]{{32}}) \({who}\)").group(1)
                   for who in ("alice", "bob")}
            phone = sim.wait_for(r"^phone\s+(CA[0-9a-f]{32})$").group(1)
            sim.wait_for(LIVE_MARKER)
            sim.wait_for(r"curl -s -X POST .*/notify")
            sim.wait_for(r"-d '\{\"conference\": \"standup\"")
            content = {"agenda": "héllo", "n": 2}
            answer = requests.post(service.url + "/notify", headers=AUTH, timeout=10,
                                   json={"conference": "standup", "content": content})
            assert answer.status_code == 201, answer.text
            assert {m["call_sid"] for m in answer.json()["messages"]} == sdk
            exact = re.escape(json.dumps(content, separators=(",", ":"), ensure_ascii=False))
            reached = {mock.wait_for(rf"^message (CA[0-9a-f]{{32}}) KX[0-9a-f]{{32}} {exact}$")
                       .group(1) for _ in sdk}
            assert reached == sdk
            members = requests.get(f"{service.url}/conferences/{conference}", headers=AUTH,
                                   timeout=10).json()
            assert {p["call_sid"] for p in members["participants"] if p["present"]} \
                == sdk | {phone}
            assert sim.proc.stdin is not None
            sim.proc.stdin.write("\n")
            sim.proc.stdin.flush()
            sim.wait_for("^conference ended$")
            assert sim.proc.wait(timeout=10) == 0
        finally:
            sim.stop()
        assert not any(phone in line for line in mock.seen + mock.drain())
        ended = requests.get(f"{service.url}/conferences/standup", headers=AUTH, timeout=10)
        assert ended.json()["status"] == "completed"
        late = requests.post(service.url + "/notify", headers=AUTH, timeout=10,
                             json={"conference": "standup", "content": {}})
        assert late.status_code == 409
    # Both SDK users were let in (their TwiML dialled the conference): nothing was refused.
    assert "dial refused" not in log_path.read_text()
