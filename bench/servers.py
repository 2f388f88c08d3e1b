"""The processes a benchmark runs: gunicorn apps (callrelay through its Procfile, baselines)
and fake Twilios, each started on a free port and stopped by its own PID."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.devtools import ROOT, RUNTIME_PYTHON, free_port, procfile_command

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _rss_mib(pid: int) -> float:
    """Resident memory of one process, in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Server:
    """One server process: `argv` run from the repository root with `env` added."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    # GET this path until it answers 200; None: until the port accepts connections.
    ready_path: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Server:
        """Start the process and wait until it serves."""
        env = {**os.environ, **self.env, "PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                                   f"see {self.log_path}")
            if self._ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready; see {self.log_path}")

    def _ready(self) -> bool:
        try:
            if self.ready_path is None:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", self.ready_path)
                return conn.getresponse().status == 200
            finally:
                conn.close()
        except OSError:
            return False

    def pids(self) -> list[int]:
        """The process and its children (gunicorn's workers)."""
        if self.proc is None:
            return []
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True, check=False).stdout
        return [self.proc.pid, *(int(p) for p in out.split())]

    def worker_pids(self) -> list[int]:
        """gunicorn's workers (for a single-process server: the process itself)."""
        pids = self.pids()
        return pids[1:] or pids

    def cpu_seconds(self) -> float:
        """CPU time used so far by the process and its children."""
        return sum(_cpu_seconds(pid) for pid in self.pids())

    def connections_per_worker(self) -> list[int]:
        """Established client connections each worker holds now (gunicorn keeps a keep-alive
        connection on the worker that accepted it), busiest first."""
        out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{self.port} )"],
                             capture_output=True, text=True, check=False).stdout
        counts = {pid: out.count(f"pid={pid},") for pid in self.worker_pids()}
        return sorted(counts.values(), reverse=True)

    def worker_rss_mib(self) -> list[float]:
        """Resident memory of each worker, in MiB."""
        return [_rss_mib(pid) for pid in self.worker_pids()]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s; only this server's own process."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def gunicorn_app(name: str, app: str, workers: int, threads: int, log_path: Path,
                 env: dict[str, str]) -> Server:
    """A baseline under gunicorn: the same worker class, counts and keep-alive as callrelay's."""
    argv = [str(RUNTIME_PYTHON), "-m", "gunicorn", "--bind", "127.0.0.1:{port}",
            "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads),
            "--keep-alive", "5", "--timeout", "30", "--no-control-socket", app]
    server = Server(name, argv, env, log_path)
    server.argv = [a.replace("{port}", str(server.port)) for a in argv]
    return server


def callrelay(name: str, workers: int, log_path: Path, env: dict[str, str]) -> Server:
    """callrelay exactly as the Procfile runs it, with WEB_CONCURRENCY and its other defaults."""
    server = Server(name, procfile_command(), env, log_path, ready_path="/readyz")
    server.env = {**env, "WEB_CONCURRENCY": str(workers), "PUBLIC_BASE_URL": server.url}
    return server


def fake_twilio(kind: str, account_sid: str, auth_token: str, delay: float,
                log_path: Path, name: str = "") -> Server:
    """A fake Twilio REST API in its own process (bench/fake_twilio.py)."""
    server = Server(name or f"twilio-{kind}", [], {}, log_path)
    server.argv = [sys.executable, "-m", "bench.fake_twilio", "--kind", kind,
                   "--port", str(server.port), "--delay", str(delay),
                   "--account-sid", account_sid, "--auth-token", auth_token]
    return server
