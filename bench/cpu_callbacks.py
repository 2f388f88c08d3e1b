"""CPU per signed status callback, callrelay against the quickstart, in one process.

    .venv/bin/python -m bench.cpu_callbacks [--rounds 8] [--per-round 2000] [--greenlets 32]

Wall-clock throughput on a shared machine moves with whatever else runs; the process CPU a
callback costs does much less. Here both apps run in one gevent-patched process (as under
gunicorn's gevent worker), driven through WSGI by `--greenlets` greenlets with fresh, correctly
signed callbacks (bench/workload.py: every one moves its leg forward, so every callrelay
callback is a durable write to SQLite on disk, group-committed as in the server). Rounds
alternate ABBA; each reports CPU µs per callback (user + system of every thread, so SQLite's
pool thread counts), and the ratio callrelay / quickstart of each round. gunicorn's HTTP
parsing, paid alike by both in a server, is left out. callrelay logs at INFO to a file, as the
server benchmark runs it, and keeps its metrics in prometheus-client's multiprocess files, as
under gunicorn.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402  (the patch must come before anything imports socket or threading)
import os
import tempfile

# As gunicorn.conf.py does in the master: before anything imports prometheus_client.
METRICS_DIR = tempfile.mkdtemp(prefix="callrelay-bench-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR

import argparse
import io
import json
import resource
import shutil
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
from gevent.pool import Pool

from bench.workload import Prepared, status_callbacks

ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token-not-a-secret"
HOST = "relay.example.com"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _environ(req: Prepared) -> dict[str, Any]:
    body = req.body.encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req.method, "SCRIPT_NAME": "", "PATH_INFO": req.path,
        "QUERY_STRING": "", "SERVER_NAME": HOST, "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": HOST,
        "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0), "CONTENT_LENGTH": str(len(body))}
    for name, value in req.headers:
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    return environ


def _call(app: WSGIApp, environ: dict[str, Any]) -> None:
    status: list[str] = []
    chunks = app(environ, lambda s, h, e=None: status.append(s))
    for _ in chunks:
        pass
    if hasattr(chunks, "close"):
        chunks.close()
    if not status or not status[0].startswith("2"):
        raise SystemExit(f"callback answered {status}: the bench is broken")


def _callbacks(first_call: int) -> Iterator[Prepared]:
    while True:
        yield from status_callbacks(f"https://{HOST}", ACCOUNT_SID, AUTH_TOKEN, 2000, first_call)
        first_call += 2000


def run_batch(app: WSGIApp, requests: Iterator[Prepared], count: int, greenlets: int) -> float:
    """CPU µs per callback over `count` callbacks driven by `greenlets` greenlets."""
    environs = [_environ(next(requests)) for _ in range(count)]  # built before the clock
    pool = Pool(greenlets)
    start = _cpu_s()
    for environ in environs:
        pool.spawn(_call, app, environ)
    pool.join(raise_error=True)
    return (_cpu_s() - start) / count * 1e6


def build_apps(workdir: Path) -> dict[str, WSGIApp]:
    """The quickstart's status callback and callrelay's, as their servers build them."""
    os.environ["TWILIO_AUTH_TOKEN"] = AUTH_TOKEN
    from bench.baselines import quickstart_webhook
    from config.settings import Settings

    settings = Settings.from_env({
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "RELAY_API_TOKENS": "bench-relay-token-0123456789",
        "STORE_URL": f"sqlite:///{workdir}/callrelay.sqlite3", "LOG_LEVEL": "INFO",
        "PUBLIC_BASE_URL": f"https://{HOST}"})
    # The request lines go to a file, as in the server benchmark; stdout keeps the results.
    log = (workdir / "callrelay.log").open("w", encoding="utf-8")
    real_stdout, sys.stdout = sys.stdout, log
    try:
        from app import create_app

        relay = create_app(settings)
    finally:
        sys.stdout = real_stdout
    return {"quickstart": quickstart_webhook.app.wsgi_app, "callrelay": relay}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=2000)
    parser.add_argument("--greenlets", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        apps = build_apps(Path(tmp))
        requests = _callbacks(0)
        names = list(apps)
        for name in names:  # warm-up: imports, caches, the database's first pages
            run_batch(apps[name], requests, min(500, args.per_round), args.greenlets)
        samples: dict[str, list[float]] = {name: [] for name in names}
        for n in range(args.rounds):
            for name in names if n % 2 == 0 else names[::-1]:
                samples[name].append(run_batch(apps[name], requests, args.per_round,
                                               args.greenlets))
        gevent.get_hub().threadpool.kill()
    shutil.rmtree(METRICS_DIR, ignore_errors=True)
    ratios = [c / q for q, c in zip(samples["quickstart"], samples["callrelay"], strict=True)]
    figures = {name: statistics.median(values) for name, values in samples.items()}
    result = {"quickstart_us": round(figures["quickstart"], 1),
              "callrelay_us": round(figures["callrelay"], 1),
              "cpu_ratio": round(statistics.median(ratios), 3),
              "cpu_ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
              "rounds": args.rounds, "per_round": args.per_round}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"CPU per signed callback, median of {args.rounds} ABBA rounds of "
              f"{args.per_round}: quickstart {result['quickstart_us']} µs, callrelay "
              f"{result['callrelay_us']} µs, callrelay/quickstart {result['cpu_ratio']}x "
              f"(rounds {result['cpu_ratio_range'][0]}-{result['cpu_ratio_range'][1]}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
