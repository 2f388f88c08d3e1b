"""Drive a server with a request file from a separate process: wrk when installed, else
bench/pyload.py; both report through the same `BENCH_JSON` summary line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class LoadResult:
    """What a load generator saw during one run."""

    requests: int
    duration_s: float
    non2xx: int
    socket_errors: int
    timeouts: int
    wraps: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        """Requests answered per second."""
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def errors(self) -> int:
        """Non-2xx answers, socket errors and timeouts."""
        return self.non2xx + self.socket_errors + self.timeouts


def loader_name(choice: str) -> str:
    """`wrk` or `python`: the loader `choice` (auto, wrk, python) resolves to here."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (bash bench/run installs it when run as root)")
    return choice


def wrk_version() -> str:
    """wrk's version line, or '' when wrk is absent."""
    if not shutil.which("wrk"):
        return ""
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    lines = (out.stdout or out.stderr).splitlines()
    return lines[0].split(" [")[0] if lines else "wrk"


def run_load(loader: str, url: str, requests_file: Path, connections: int,
             duration_s: float, threads: int = 2) -> LoadResult:
    """Replay `requests_file` at `url` with `connections` keep-alive connections."""
    if loader == "wrk":
        argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration_s:g}s",
                "--timeout", "10s", "-s", str(HERE / "replay.lua"), url, "--",
                str(requests_file), str(threads)]
    else:
        argv = [sys.executable, "-m", "bench.pyload", "--url", url, "--file",
                str(requests_file), "--connections", str(connections),
                "--duration", str(duration_s), "--processes", str(threads)]
    out = subprocess.run(argv, cwd=HERE.parent, capture_output=True, text=True,
                         timeout=duration_s + 120, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line.removeprefix("BENCH_JSON "))
            return LoadResult(**data)
    raise RuntimeError(f"{argv[0]} printed no summary (exit {out.returncode}): "
                       f"{out.stderr.strip()[-500:]}")
