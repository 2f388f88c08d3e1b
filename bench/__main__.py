"""Run every benchmark on this machine and print the table: `python -m bench` (or bench/run).

Each figure is a ratio against a baseline measured in the same run: the quickstart-style apps
in bench/baselines/ under the same gunicorn configuration, or callrelay itself with 100 legs
stored. See BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

from bench import footprint, parts, servers, serving
from bench.context import ACCOUNT_SID, AUTH_TOKEN, TWILIO_DELAY_S, Context, Options
from bench.load import loader_name, wrk_version
from bench.report import Row, as_json, table
from sandbox.devtools import ROOT

RESULTS = ROOT / "bench" / "results"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Databases the bench may use on the shared Redis: not 0 (development) nor 15 (the tests).
REDIS_DBS = range(14, 0, -1)
# The local PostgreSQL server the bench makes two databases on (and drops them afterwards).
POSTGRES_URL = os.environ.get("CALLRELAY_BENCH_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/postgres")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}",
            "loadavg_at_start": os.getloadavg()[0], "when": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                           time.gmtime())}


def redis_urls(ctx: Context) -> tuple[list[str], str]:
    """Two empty databases on the local Redis (flushed afterwards), or why there are none."""
    if not (ROOT / "services" / "store" / "redis" / "legs.py").exists():
        return [], "services/store/redis/legs.py does not exist"
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=1)
    try:
        client.ping()
        free = [db for db in REDIS_DBS
                if redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).dbsize() == 0]
    except redis.RedisError:
        return [], f"no Redis server answers on {REDIS_HOST}:{REDIS_PORT}"
    finally:
        client.close()
    if len(free) < 2:
        return [], f"fewer than two empty databases on {REDIS_HOST}:{REDIS_PORT}"
    ctx.say(f"Redis: databases {free[0]} and {free[1]} on {REDIS_HOST}:{REDIS_PORT}")
    return [f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}" for db in free[:2]], ""


@contextlib.contextmanager
def postgres_urls(ctx: Context) -> Iterator[tuple[list[str], str]]:
    """Two new databases on the local PostgreSQL (dropped afterwards), or why there are none."""
    names = [f"callrelay_bench_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=2) as admin:
            for name in names:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        yield [], f"no PostgreSQL server to create databases on ({exc.__class__.__name__})"
        return
    ctx.say(f"PostgreSQL: databases {names[0]} and {names[1]}")
    try:
        yield [urlunsplit(urlsplit(POSTGRES_URL)._replace(path="/" + n)) for n in names], ""
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            for name in names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))


def run_postgres_scale(ctx: Context) -> list[Row]:
    """Part 3 for PostgreSQL when there is a server."""
    with postgres_urls(ctx) as (urls, why_not):
        if not urls:
            ctx.say(f"scale/PostgreSQL not run: {why_not}")
            return [Row("3 scale, PostgreSQL", "not run", "", "", None, note=why_not)]
        # A round trip or two a leg, as for Redis: three processes share the seeding.
        return parts.scale(ctx, "PostgreSQL", urls[0], urls[1], processes=3)


def run_scale(ctx: Context) -> list[Row]:
    """Part 3 for SQLite, then for Redis and PostgreSQL when there are servers."""
    rows = parts.scale(ctx, "SQLite", f"sqlite:///{ctx.workdir}/small.sqlite3",
                       f"sqlite:///{ctx.workdir}/big.sqlite3")
    urls, why_not = redis_urls(ctx)
    if not urls:
        ctx.say(f"scale/Redis not run: {why_not}")
        return [*rows, Row("3 scale, Redis", "not run", "", "", None, note=why_not)]
    try:
        # Seeding through the port costs a few round trips a leg: three processes share it.
        rows += parts.scale(ctx, "Redis", urls[0], urls[1], processes=3)
    finally:
        for url in urls:
            redis.Redis.from_url(url).flushdb()
    return rows


def run_footprint(ctx: Context) -> list[Row]:
    """Part 3's bytes per call in each store with a server here, beside SQLite's (the
    phone-to-SDK calls of bench/footprint.py: live, ended and retained, tombstones only)."""
    postgres: str | None = POSTGRES_URL
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=2).close()
    except psycopg.Error:
        postgres = None
    urls, _ = redis_urls(ctx)
    ctx.say("footprint: bytes per call in each store")
    results = footprint.measure_stores(2000, postgres, urls[0] if urls else None)
    if urls:
        redis.Redis.from_url(urls[0]).flushdb()
    sqlite_ended = results["SQLite"][1][1]
    return [Row("3 scale, bytes per call", store, f"SQLite {sqlite_ended:,.0f} B ended",
                " / ".join(f"{value:,.0f}" for _, value in moments) + " B",
                moments[1][1] / sqlite_ended,
                note="live / ended, retained / tombstones only; the ratio: ended, retained")
            for store, moments in results.items()]


def parse_args(argv: list[str] | None) -> tuple[Options, bool]:
    """Options from the command line; --quick is for checking the bench itself."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds, parts 1-2")
    parser.add_argument("--scale-duration", type=float, default=6.0)
    parser.add_argument("--scale-rounds", type=int, default=3)
    parser.add_argument("--legs", type=int, default=100_000, help="legs in the big registry")
    parser.add_argument("--loader", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--only", action="append",
                        choices=("webhooks", "notify", "slow", "stalled", "scale"))
    parser.add_argument("--quick", action="store_true",
                        help="1 round of 3 s, 10,000 legs (instead of the options above)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy flame graphs of callrelay's workers in bench/results/")
    args = parser.parse_args(argv)
    selected = tuple(args.only or ("webhooks", "notify", "slow", "stalled", "scale"))
    profile = RESULTS / "profiles" if args.profile else None
    if args.quick:
        return Options(3.0, 1, 3.0, 1, 10_000, 1.0, loader_name(args.loader), selected,
                       profile), args.keep
    return Options(args.duration, args.rounds, args.scale_duration, args.scale_rounds,
                   args.legs, 2.0, loader_name(args.loader), selected, profile), args.keep


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts, print the table, save it with every run in bench/results/."""
    options, keep = parse_args(argv)
    info = machine()
    info["loader"] = wrk_version() if options.loader == "wrk" else "python (bench/pyload.py)"
    workdir = Path(tempfile.mkdtemp(prefix="callrelay-bench-"))
    fake = servers.fake_twilio("lean", ACCOUNT_SID, AUTH_TOKEN, TWILIO_DELAY_S,
                               workdir / "twilio-lean.log")
    ctx = Context(options, workdir, fake)
    ctx.say(f"{info['nproc']} x {info['cpu']}, Python {info['python']}, load {info['loader']}; "
            f"work directory {workdir}")
    started = time.monotonic()
    rows: list[Row] = []
    try:
        with parts.started(fake):
            if "webhooks" in options.parts:
                rows += parts.webhooks(ctx)
            if "notify" in options.parts:
                rows += parts.twilio_fakes(ctx)
                rows += parts.notify(ctx)
            if "slow" in options.parts:
                rows += serving.slow_notify(ctx)
            if "stalled" in options.parts:
                rows += serving.stalled_clients(ctx)
            if "scale" in options.parts:
                rows += run_scale(ctx)
                rows += run_postgres_scale(ctx)
                rows += run_footprint(ctx)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    info["minutes"] = round((time.monotonic() - started) / 60, 1)
    info["errors"] = sum(row.errors for row in rows)
    text = (f"callrelay benchmarks, {info['when']}: {info['nproc']} x {info['cpu']}, "
            f"Python {info['python']}, {info['loader']}, {info['minutes']} min, "
            f"errors (non-2xx, socket, timeouts) {info['errors']}\n\n{table(rows)}\n")
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(text)
    (RESULTS / "latest.json").write_text(json.dumps(as_json(rows, ctx.runs, info), indent=1))
    return 1 if any(row.met is False for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
