"""Run callrelay exactly as Heroku and Render do: the Procfile's web command, in a subprocess."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import requests

from sandbox.devtools import ROOT, deployed_env, free_port, procfile_command


class Service:
    """One callrelay instance started through the Procfile command."""

    def __init__(self, env: dict[str, str], workers: int = 3, port: int | None = None,
                 log_path: Path | None = None) -> None:
        self.port = port or free_port()
        # What a platform gives the process: its variables, and the runtime venv's gunicorn.
        self.env = deployed_env(**env, PORT=str(self.port), WEB_CONCURRENCY=str(workers),
                                PYTHONUNBUFFERED="1")
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Service:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(procfile_command(), cwd=ROOT, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()  # never leave a server behind a failed start
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"callrelay exited with {self.proc.returncode}; "
                                   f"see {self.log_path}")
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass  # not listening yet, or no worker has booted to answer
            time.sleep(0.1)
        raise RuntimeError(f"callrelay did not become ready on {self.url}")

    def worker_pids(self) -> list[int]:
        """PIDs of the gunicorn workers (children of the master)."""
        assert self.proc is not None
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True, check=False).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> Service:
        self.stop()
        return self.start()

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
