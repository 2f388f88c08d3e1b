"""A Python load generator for when wrk is absent: replays a request file like bench/replay.lua.

Runs in its own processes (never inside the process under test): `--processes` processes of
`--connections / --processes` threads, each thread one keep-alive connection, for `--duration`
seconds. Prints one `BENCH_JSON {...}` line with the same fields as the wrk script.

    python -m bench.pyload --url http://127.0.0.1:8000 --file reqs.txt --connections 32
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

Request = tuple[str, str, dict[str, str], bytes]


@dataclass
class Tally:
    """What one thread (then one process, then the run) saw."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    socket_errors: int = 0
    wraps: int = 0
    seconds: float = 0.0

    def add(self, other: Tally) -> None:
        """Fold another tally into this one."""
        self.latencies_ms += other.latencies_ms
        self.statuses.update(other.statuses)
        self.socket_errors += other.socket_errors
        self.wraps += other.wraps
        self.seconds = max(self.seconds, other.seconds)


def _parse(line: str) -> Request:
    method, path, headers, body = line.rstrip("\n").split("\t", 3)
    pairs = (h.split(": ", 1) for h in headers.split("\x1f") if h)
    return method, path, {name: value for name, value in pairs}, body.encode()


def _worker(url: str, file: str, shard: int, shards: int, threads: int,
            duration: float) -> Tally:
    """One process: `threads` connections replaying this process's share of the file."""
    lines = Path(file).read_text(encoding="utf-8").splitlines()
    mine = [_parse(line) for i, line in enumerate(lines) if i % shards == shard]
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
    tallies = [Tally() for _ in range(threads)]
    start = time.time()  # after parsing: only the time spent sending counts
    deadline = start + duration

    def run(t: int) -> None:
        tally, share = tallies[t], mine[t::threads]
        conn = http.client.HTTPConnection(host, port, timeout=10)
        i = 0
        while share and time.time() < deadline:
            method, path, headers, body = share[i]
            i += 1
            if i == len(share):
                i, tally.wraps = 0, tally.wraps + 1
            start = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                tally.socket_errors += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
                continue
            tally.latencies_ms.append((time.perf_counter() - start) * 1000)
            tally.statuses[response.status] += 1
        conn.close()

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = Tally(seconds=time.time() - start)
    for tally in tallies:
        total.add(tally)
    return total


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    """Run the load and print its summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.pyload")
    parser.add_argument("--url", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    processes = max(1, min(args.processes, args.connections))
    total = Tally()
    with ProcessPoolExecutor(processes) as pool:
        futures = [pool.submit(_worker, args.url, args.file, p, processes,
                               args.connections // processes
                               + (p < args.connections % processes), args.duration)
                   for p in range(processes)]
        for future in futures:
            total.add(future.result())
    summary = {
        "requests": len(total.latencies_ms), "duration_s": total.seconds,
        "non2xx": sum(n for code, n in total.statuses.items() if not 200 <= code < 300),
        "wraps": total.wraps, "socket_errors": total.socket_errors, "timeouts": 0,
        "p50_ms": _percentile(total.latencies_ms, 50),
        "p99_ms": _percentile(total.latencies_ms, 99),
        "max_ms": max(total.latencies_ms, default=0.0),
        "statuses": {str(code): n for code, n in total.statuses.items()},
    }
    print("BENCH_JSON " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
