"""scripts/run on a real `git clone` with no .venv, as a new user runs it: it builds the runtime
venv, writes a development .env, starts the mock it checks is its own, serves on 127.0.0.1 only,
relays the README's message, and stops cleanly.

One clone per module (scripts/run builds its .venv once, in the first test that runs it); the
working tree's uncommitted changes are laid over the clone, so they are what is tested.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from sandbox.devtools import ROOT, free_port
from sandbox.simulate import LIVE_MARKER
from tests.support.settings_source import settings_variables

pytestmark = pytest.mark.e2e
FIRST_BUILD_S = 900.0  # the first scripts/run of the clone installs requirements.txt
SID = r"CA[0-9a-f]{32}"


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """`git clone` of this repository at HEAD, with the working tree's changes laid over it."""
    dest = tmp_path_factory.mktemp("clone") / "callrelay"
    _git("clone", "--quiet", str(ROOT), str(dest))
    _git("checkout", "--quiet", "--detach", _git("rev-parse", "HEAD").strip(), cwd=dest)
    changed = _git("diff", "--name-only", "-z", "HEAD").split("\0")
    untracked = _git("ls-files", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, changed + untracked):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
        else:  # deleted in the working tree
            (dest / name).unlink(missing_ok=True)
    assert not (dest / ".venv").exists() and not (dest / ".env").exists()
    return dest


@pytest.fixture
def repo(clone: Path) -> Iterator[Path]:
    """The clone as a new user has it: no .env, no data (its .venv, once built, stays)."""
    yield clone
    (clone / ".env").unlink(missing_ok=True)
    shutil.rmtree(clone / "data", ignore_errors=True)


def user_env(**extra: str) -> dict[str, str]:
    """A developer's shell: none of callrelay's variables set."""
    env = {k: v for k, v in os.environ.items()
           if k not in settings_variables() and k not in ("PORT", "HOST", "VIRTUAL_ENV")}
    return {**env, **extra}


def reachable(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, port)) == 0


class Run:
    """scripts/run in its own session, on free ports for callrelay and the mock."""

    def __init__(self, repo: Path, mock_port: int | None = None, **extra: str) -> None:
        self.port, self.mock_port = free_port(), mock_port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = user_env(PORT=str(self.port), WEB_CONCURRENCY="2",
                       TWILIO_API_BASE_URL=f"http://127.0.0.1:{self.mock_port}", **extra)
        self.log = repo / "run.log"
        self.log.write_bytes(b"")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(repo / "scripts" / "run")], cwd=repo, env=env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + FIRST_BUILD_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.text()
            try:
                if requests.get(self.url + "/readyz", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"scripts/run did not serve /readyz:\n{self.text()}")

    def wait_exit(self) -> int | None:
        """Its exit status, or None if it served /readyz instead of exiting."""
        deadline = time.monotonic() + FIRST_BUILD_S
        while time.monotonic() < deadline:
            if (status := self.proc.poll()) is not None:
                return status
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + "/readyz", timeout=2).ok:
                    return None
            time.sleep(0.2)
        raise AssertionError(f"scripts/run neither exited nor served:\n{self.text()}")

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := re.search(pattern, self.text(), re.M):
                return found
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r} in:\n{self.text()}")

    def stop(self) -> int:
        """SIGTERM to the script only: it must stop callrelay and the mock itself."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=40)
        finally:
            with contextlib.suppress(ProcessLookupError):  # leave nothing behind, whatever happened
                os.killpg(self.proc.pid, signal.SIGKILL)


def readme_block(containing: str) -> str:
    """The bash block of the README's quick start that contains `containing`."""
    readme = (ROOT / "README.md").read_text()
    quick_start = readme[readme.index("## Quick start"):readme.index("## Twilio set-up")]
    (block,) = [b for b in re.findall(r"```bash\n(.*?)```", quick_start, re.S)
                if containing in b]
    return block


def test_fresh_clone_serves_on_loopback_and_relays_the_readmes_message(repo):
    assert readme_block("scripts/run").strip() == "scripts/run"
    run = Run(repo)
    try:
        run.wait_ready()
        env_file = repo / ".env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines()
                      if line and not line.startswith("#"))
        assert len(values["RELAY_API_TOKENS"]) >= 32
        assert values["PUBLIC_BASE_URL"] == run.url  # follows PORT
        # Loopback only: not reachable on another address of this machine.
        assert reachable("127.0.0.1", run.port) and not reachable("127.0.0.2", run.port)

        # The README's second terminal, as written (its port is this run's).
        simulate = readme_block("sandbox.simulate").strip().split()
        sim = subprocess.Popen(simulate, cwd=repo, env=user_env(), text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
        try:
            seen = ""
            assert sim.stdout is not None
            while LIVE_MARKER not in seen:
                line = sim.stdout.readline()
                assert line, seen
                seen += line
            sdk = re.search(rf"^sdk\s+({SID}) \(alice\)$", seen, re.M).group(1)
            # The README's third terminal, as written.
            notify = readme_block("export RELAY_TOKEN").replace("127.0.0.1:8000",
                                                                f"127.0.0.1:{run.port}")
            sent = subprocess.run(["bash", "-c", notify], cwd=repo, env=user_env(),
                                  capture_output=True, text=True, timeout=30)
            (message,) = json.loads(sent.stdout)["messages"]
            assert message["call_sid"] == sdk and message["identity"] == "alice"
            run.wait_for(rf"^message {sdk} KX[0-9a-f]{{32}} \{{\"hello\":\"alice\"\}}$")
            sim.stdin.write("\n")
            sim.stdin.flush()
            assert sim.wait(timeout=30) == 0
        finally:
            if sim.poll() is None:
                sim.kill()
        # The development .env lets the simulated conference in: it mints tickets with the
        # .env's secret, as a backend would, and callrelay's TwiML dials them in.
        conference = subprocess.run([str(repo / ".venv" / "bin" / "python"), "-m",
                                     "sandbox.simulate", "--scenario", "conference", "--pause",
                                     "0", "--url", run.url], cwd=repo, env=user_env(),
                                    capture_output=True, text=True, timeout=60)
        assert conference.returncode == 0, conference.stdout + conference.stderr
        assert "conference ended" in conference.stdout
    finally:
        status = run.stop()
    assert status == 143, run.text()
    assert "dial refused" not in run.text()
    assert not reachable("127.0.0.1", run.port) and not reachable("127.0.0.1", run.mock_port)


def test_host_opens_it_to_other_addresses_and_a_second_run_keeps_env(repo):
    first = Run(repo)
    try:
        first.wait_ready()
    finally:
        first.stop()
    env_file = repo / ".env"
    with env_file.open("a") as f:
        f.write("# edited by hand\n")
    before = env_file.read_bytes()
    run = Run(repo, HOST="0.0.0.0")  # noqa: S104
    try:
        run.wait_ready()
        assert reachable("127.0.0.2", run.port)
    finally:
        run.stop()
    assert env_file.read_bytes() == before


class _Stranger(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"hello": "I am not a Twilio mock"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_program_on_the_mock_port_stops_it_with_one_line(repo):
    stranger = ThreadingHTTPServer(("127.0.0.1", 0), _Stranger)
    threading.Thread(target=stranger.serve_forever, daemon=True).start()
    port = stranger.server_address[1]
    try:
        run = Run(repo, mock_port=port)
        try:
            status = run.wait_exit()
        finally:
            run.stop()
    finally:
        stranger.shutdown()
        stranger.server_close()
    assert status == 1
    last = run.text().splitlines()[-1]
    assert last.startswith(f"callrelay: port {port} of TWILIO_API_BASE_URL "
                           f"(http://127.0.0.1:{port}), where the local Twilio mock should "
                           "listen, is taken by another program; pick a free port: "
                           "TWILIO_API_BASE_URL=http://127.0.0.1:")
    assert "Traceback" not in run.text() and "twilio mock listening" not in run.text()
    assert not reachable("127.0.0.1", run.port)


def test_real_variables_mean_no_env_file_and_no_fallback(repo):
    run = Run(repo, TWILIO_ACCOUNT_SID="AC" + "1" * 32)
    try:
        status = run.wait_exit()
    finally:
        run.stop()
    assert status is not None and status != 0 and not (repo / ".env").exists()
    assert "callrelay: configuration error: RELAY_API_TOKENS is required but not set" \
        in run.text().splitlines()
