"""What every part of the benchmark shares: options, a work directory, the fake Twilio, the
load generator, and the way runs are measured and interleaved."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench import servers
from bench.load import run_load
from bench.report import Run
from bench.workload import Prepared, write_requests

ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token-not-a-secret"
RELAY_TOKEN = "bench-relay-token-0123456789"
TWILIO_DELAY_S = 0.05
CALLERS = 32  # concurrent /notify callers, and concurrent webhook connections
# Twilio's real latency is hundreds of ms: the slow /notify part has many more in flight.
SLOW_TWILIO_DELAY_S = 0.3
SLOW_CALLERS = 128
STALLED = 200  # connections that send half a request and wait


@dataclass(frozen=True)
class Options:
    """How long and how often to measure."""

    duration_s: float = 4.0
    # Many short runs: each opens fresh connections, and how gunicorn's workers happen to
    # split them moves a /notify run by up to 1.5x; the median over 8 splits is steadier.
    rounds: int = 8
    scale_duration_s: float = 6.0
    scale_rounds: int = 3
    legs: int = 100_000
    warmup_s: float = 2.0
    loader: str = "wrk"
    parts: tuple[str, ...] = ("webhooks", "notify", "slow", "stalled", "scale")
    # Where py-spy flame graphs of callrelay's workers go (first run of each server), if set.
    profile_dir: Path | None = None


@dataclass
class Context:
    """One benchmark run's shared state."""

    options: Options
    workdir: Path
    fake: servers.Server
    runs: dict[str, list[Run]] = field(default_factory=dict)
    _files: int = 0
    _profiled: set[str] = field(default_factory=set)

    def say(self, message: str) -> None:
        """Progress, on stderr (the table goes to stdout)."""
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def log(self, name: str) -> Path:
        """Where a server's output goes."""
        return self.workdir / f"{name}.log"

    def relay_env(self, store_url: str, twilio: servers.Server | None = None) -> dict[str, str]:
        """callrelay's environment: a fake Twilio (the lean one), a store, INFO logs to a file."""
        return {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "RELAY_API_TOKENS": RELAY_TOKEN, "TWILIO_API_BASE_URL": (twilio or self.fake).url,
                "STORE_URL": store_url, "LOG_LEVEL": "INFO"}

    def baseline_env(self, twilio: servers.Server | None = None) -> dict[str, str]:
        """The quickstart apps' environment."""
        return {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "RELAY_TOKEN": RELAY_TOKEN, "TWILIO_API_BASE_URL": (twilio or self.fake).url}

    def requests_file(self, requests: Iterable[Prepared]) -> Path:
        """Write prepared requests to a new file of the work directory."""
        self._files += 1
        path = self.workdir / f"requests-{self._files}.txt"
        write_requests(path, requests)
        return path

    def fake_stats(self) -> dict[str, int]:
        """Connections and messages the lean fake Twilio has seen so far."""
        with urllib.request.urlopen(self.fake.url + "/stats", timeout=5) as answer:
            stats: dict[str, int] = json.load(answer)
        return stats

    def measure(self, label: str, server: servers.Server, requests: Path, *,
                duration_s: float, connections: int = CALLERS,
                watch: servers.Server | None = None) -> Run:
        """Load `server` from a separate process; its CPU time and worker memory alongside."""
        before, watched = server.cpu_seconds(), watch.cpu_seconds() if watch else 0.0
        twilio = self.fake_stats()
        profilers = self._profile(server, duration_s)
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(run_load, self.options.loader, server.url, requests,
                                  connections, duration_s)
            time.sleep(duration_s / 2)
            split = server.connections_per_worker()
            result = running.result()
        for profiler in profilers:
            profiler.wait(timeout=60)
        after = self.fake_stats()
        answered = max(result.requests, 1)
        extra: dict[str, float] = {
            "twilio_connections": after["connections"] - twilio["connections"],
            "twilio_messages": after["messages"] - twilio["messages"],
            "busiest_worker_connections": split[0] if split else 0}
        if watch is not None:
            extra["watched_cpu_ms_per_request"] = (watch.cpu_seconds() - watched) / answered * 1e3
        run = Run(label, result, (server.cpu_seconds() - before) / answered * 1e3,
                  server.worker_rss_mib(), extra)
        self.say(f"  {label}: {result.rps:.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 "
                 f"{result.p99_ms:.1f} ms, {run.cpu_ms_per_request:.2f} CPU ms/req, "
                 f"errors {result.errors}, connections per worker {split}"
                 f"{', WRAPPED' if result.wraps else ''}")
        return run

    def _profile(self, server: servers.Server, duration_s: float) -> list[subprocess.Popen[bytes]]:
        """py-spy on each callrelay worker for the first measured run of a server."""
        out = self.options.profile_dir
        if out is None or not server.name.startswith("callrelay") or server.name in self._profiled:
            return []
        self._profiled.add(server.name)
        out.mkdir(parents=True, exist_ok=True)
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        return [subprocess.Popen([py_spy, "record", "--pid", str(pid), "--rate", "250",
                                  "--duration", str(max(1, int(duration_s) - 1)), "--nonblocking",
                                  "--output", str(out / f"{server.name}-{pid}.svg")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for pid in server.worker_pids()]

    def interleave(self, part: str, rounds: int, steps: list[tuple[str, Callable[[], Run]]]
                   ) -> dict[str, list[Run]]:
        """Run each step once per round, reversing the order every other round (ABBA), so that
        the machine's drift and noise fall on both sides alike."""
        runs: dict[str, list[Run]] = {name: [] for name, _ in steps}
        for n in range(rounds):
            for name, step in steps if n % 2 == 0 else steps[::-1]:
                runs[name].append(step())
        for name, group in runs.items():
            self.runs[f"{part}/{name}"] = group
        return runs
