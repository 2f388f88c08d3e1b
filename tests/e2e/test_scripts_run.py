"""scripts/run on a fresh copy of the repository: a development .env, the mock, /readyz, a clean stop."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from config.settings import Settings
from sandbox.devtools import ROOT, free_port
from tests.support.settings_source import settings_variables

pytestmark = pytest.mark.e2e


def copy_repo(dest: Path) -> Path:
    """The working tree's files as git sees them (no .env, no data), sharing this .venv."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        source = ROOT / name
        if source.is_file():  # not a tracked file deleted in the working tree
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)  # mtimes kept: bootstrap sees nothing to install
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Run:
    """scripts/run in its own session, on free ports for callrelay and the mock."""

    def __init__(self, repo: Path, **extra: str) -> None:
        self.port, self.mock_port = free_port(), free_port()
        # A developer's machine: none of callrelay's variables set.
        env = {k: v for k, v in os.environ.items() if k not in settings_variables()}
        env.update(PORT=str(self.port), PYTHON=sys.executable, WEB_CONCURRENCY="2",
                   TWILIO_API_BASE_URL=f"http://127.0.0.1:{self.mock_port}", **extra)
        self.log = repo / "run.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(repo / "scripts" / "run")], cwd=repo, env=env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"scripts/run did not serve /readyz:\n{self.log.read_text()}")

    def stop(self) -> int:
        """SIGTERM to the script only: it must stop callrelay and the mock itself."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):  # leave nothing behind, whatever happened
                os.killpg(self.proc.pid, signal.SIGKILL)


def test_first_run_creates_env_serves_and_stops_cleanly_then_keeps_env(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    run = Run(repo)
    try:
        run.wait_ready()
        assert listening(run.mock_port), "the Twilio mock is not running beside callrelay"
        env_file = repo / ".env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        settings = Settings.from_env(_parse(env_file))
        (token,) = settings.relay_api_tokens
        assert len(token) >= 32 and token not in (repo / ".env.example").read_text()
        calls = requests.get(f"http://127.0.0.1:{run.port}/calls", timeout=5,
                             headers={"Authorization": f"Bearer {token}"})
        assert calls.status_code == 200
        # The development .env lets the simulated conference in: it mints tickets with the
        # .env's secret, as a backend would, and callrelay's TwiML dials them in.
        developer = {k: v for k, v in os.environ.items() if k not in settings_variables()}
        sim = subprocess.run([str(repo / ".venv" / "bin" / "python"), "-m", "sandbox.simulate",
                              "--scenario", "conference", "--pause", "0",
                              "--url", f"http://127.0.0.1:{run.port}"], cwd=repo, env=developer,
                             capture_output=True, text=True, timeout=60)
        assert sim.returncode == 0, sim.stdout + sim.stderr
        assert "conference ended" in sim.stdout
    finally:
        status = run.stop()
    assert status == 143
    assert not listening(run.port) and not listening(run.mock_port)
    assert "RELAY_API_TOKENS" in run.log.read_text()
    assert "dial refused" not in run.log.read_text()

    with env_file.open("a") as f:
        f.write("# edited by hand\n")
    before = env_file.read_bytes()
    again = Run(repo)
    try:
        again.wait_ready()
    finally:
        again.stop()
    assert env_file.read_bytes() == before


def test_real_variables_mean_no_env_file_and_no_fallback(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    run = Run(repo, TWILIO_ACCOUNT_SID="AC" + "1" * 32)
    try:
        status = run.proc.wait(timeout=90)
    finally:
        run.stop()
    assert status != 0 and not (repo / ".env").exists()
    assert "RELAY_API_TOKENS is required but not set" in run.log.read_text()


def _parse(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}
