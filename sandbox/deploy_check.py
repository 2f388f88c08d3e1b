"""Boot a checkout as Heroku and Render do, and prove it relays: the deploy step of CI.

    python -m sandbox.deploy_check [--redis-url URL] [--postgres-url URL]

Run from a fresh clone with the python of a venv that `pip install -r requirements.txt` alone
built (scripts/deploy-check does all of that). It starts the sandbox's Twilio mock, then the
Procfile's `web:` line through `bash -c` (as Heroku runs it) with only what a platform sets
(`PATH`, `PORT`, `WEB_CONCURRENCY`) and the required variables, waits for `/readyz`, plays one
signed call, sends one `/notify` to it, hangs up, and stops the service with SIGTERM as a
platform does. With SQLite; then with `REDIS_URL`; then with `DATABASE_URL` (`postgres://`, as
Heroku writes it) naming a database created for the check on the --postgres-url server.
Exit 0 when every step did what it should; otherwise 1, with the service's log.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests
from psycopg import sql

from sandbox.calls import sdk_calls_phone
from sandbox.devtools import ROOT, free_port, procfile_web
from sandbox.simulate import SimulationFailed, answer_call, play
from sandbox.twilio_mock import IDENTITY_PATH

GRACEFUL_TIMEOUT_S = 20  # config/gunicorn.conf.py's graceful_timeout
READY_TIMEOUT_S = 60


class CheckFailed(Exception):
    """A step of the deployment did not do what it should."""


def _wait(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CheckFailed(f"{what} exited with status {proc.returncode} before it answered")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet
        time.sleep(0.2)
    raise CheckFailed(f"{what} did not answer {url} within {READY_TIMEOUT_S} s")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM to the whole process group, as a platform stops a dyno or an instance."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=GRACEFUL_TIMEOUT_S + 5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise CheckFailed(f"the service did not exit within {GRACEFUL_TIMEOUT_S + 5} s "
                          "of SIGTERM") from None


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new database on the server at `server_url`, as DATABASE_URL would name it; dropped."""
    name = f"callrelay_deploy_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = urlunsplit(urlsplit(server_url)._replace(scheme="postgres", path="/" + name))
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def check(store: str, url: str | None, workdir: Path) -> None:
    """One deployment: boot, a signed call, one /notify, SIGTERM. Raises CheckFailed."""
    account_sid = "AC" + secrets.token_hex(16)
    auth_token, relay_token = secrets.token_hex(16), secrets.token_urlsafe(32)
    port, mock_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    mock = subprocess.Popen(
        [sys.executable, "-m", "sandbox.twilio_mock", "--port", str(mock_port),
         "--account-sid", account_sid, "--auth-token", auth_token],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Only what Heroku or Render give the process: PATH with the app's venv, PORT,
    # WEB_CONCURRENCY, and the variables an operator sets. No PYTHONPATH, no test tools.
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
           "HOME": str(workdir), "PORT": str(port), "WEB_CONCURRENCY": "2",
           "TWILIO_ACCOUNT_SID": account_sid, "TWILIO_AUTH_TOKEN": auth_token,
           "RELAY_API_TOKENS": relay_token, "PUBLIC_BASE_URL": base,
           "TWILIO_API_BASE_URL": f"http://127.0.0.1:{mock_port}",
           "TWILIO_CALLER_ID": "+15005550006"}
    if store == "redis" and url:
        env["REDIS_URL"] = url  # as Heroku's and Render's Key Value add-ons hand it
    if store == "postgres" and url:
        env["DATABASE_URL"] = url  # as Heroku Postgres and Render PostgreSQL hand it
    log_path = workdir / f"web-{store}.log"
    with open(log_path, "wb") as log:
        web = subprocess.Popen(["bash", "-c", procfile_web()], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(f"http://127.0.0.1:{mock_port}{IDENTITY_PATH}", mock, "the Twilio mock")
        _wait(base + "/readyz", web, "the web process")
        call = sdk_calls_phone(account_sid, identity="deploy-check")
        with requests.Session() as http:
            call = answer_call(call, base, base, auth_token, 0, http)
            sent = http.post(base + "/notify", timeout=30,
                             headers={"Authorization": f"Bearer {relay_token}"},
                             json={"identity": "deploy-check", "content": {"ok": True}})
            if sent.status_code != 201:
                raise CheckFailed(f"/notify answered {sent.status_code}: {sent.text[:300]}")
            (message,) = sent.json()["messages"]
            if message["call_sid"] != call.parent_sid or not message["sid"].startswith("KX"):
                raise CheckFailed(f"/notify sent to the wrong leg: {message}")
            play(call.hangup, base, base, auth_token, 0, http)
            # The console's templates and static files ship with the code, not from a build.
            login = http.get(base + "/console/login", timeout=30)
            style = http.get(base + "/console/static/console.css", timeout=30)
            if login.status_code != 200 or "csrf_token" not in login.text \
                    or style.status_code != 200:
                raise CheckFailed(f"the console's sign-in page answered {login.status_code}, "
                                  f"its stylesheet {style.status_code}")
        status = _stop(web)
        if status != 0:
            raise CheckFailed(f"the service exited with status {status} after SIGTERM")
    except BaseException:
        if web.poll() is None:
            os.killpg(web.pid, signal.SIGKILL)
            web.wait()
        raise
    finally:
        mock.terminate()
        mock.wait(timeout=10)
    text = log_path.read_text(errors="replace")
    if "Traceback" in text or relay_token in text or auth_token in text:
        raise CheckFailed("the service's log holds a traceback or a secret")


def main(argv: list[str] | None = None) -> int:
    """Run the check once with SQLite, and once more with each store URL given."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.deploy_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", help="also run with REDIS_URL set to this")
    parser.add_argument("--postgres-url", help="also run with DATABASE_URL set to a database "
                        "created (and dropped) on this server")
    args = parser.parse_args(argv)
    runs = [("sqlite", None)] + ([("redis", args.redis_url)] if args.redis_url else []) \
        + ([("postgres", args.postgres_url)] if args.postgres_url else [])
    with tempfile.TemporaryDirectory(prefix="callrelay-deploy-") as tmp:
        for store, url in runs:
            started = time.monotonic()
            try:
                if store == "postgres" and url:
                    with fresh_database(url) as database_url:
                        check(store, database_url, Path(tmp))
                else:
                    check(store, url, Path(tmp))
            except (CheckFailed, SimulationFailed, requests.RequestException, OSError,
                    psycopg.Error) as exc:
                print(f"deploy check ({store}): FAILED: {exc}", file=sys.stderr, flush=True)
                log = Path(tmp) / f"web-{store}.log"
                if log.exists():
                    tail = log.read_text(errors="replace").splitlines()[-40:]
                    print("\n".join(["--- the web process's last lines:", *tail]),
                          file=sys.stderr, flush=True)
                return 1
            print(f"deploy check ({store}): booted from the Procfile, /readyz 200, a signed "
                  f"call, /notify 201 to the SDK's leg, the console's sign-in page, "
                  f"SIGTERM exit 0 "
                  f"({time.monotonic() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
