"""Developer helpers shared by the tests and the benchmarks: the repository root, free ports,
the runtime virtualenv, and the Procfile's web command."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Built from requirements.txt alone (scripts/bootstrap runtime): what Heroku and Render install.
RUNTIME_VENV = ROOT / ".venv"
RUNTIME_PYTHON = RUNTIME_VENV / "bin" / "python"


def ensure_runtime_venv() -> Path:
    """The runtime venv's python, (re)built first when requirements.txt changed."""
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON") or sys.executable}
    subprocess.run([str(ROOT / "scripts" / "bootstrap"), "runtime"], check=True, env=env)
    return RUNTIME_PYTHON


def deployed_env(**variables: str) -> dict[str, str]:
    """A process environment as a platform gives it: the runtime venv first on PATH, the
    system's basics, and the variables given; nothing from the test tools' environment."""
    path = os.pathsep.join([str(RUNTIME_VENV / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    base = {name: os.environ[name] for name in ("HOME", "LANG", "TMPDIR", "TZ")
            if name in os.environ}
    return {**base, "PATH": path, **variables}


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def procfile_web() -> str:
    """The Procfile's `web:` command line."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise ValueError("the Procfile has no web: line")


def procfile_command() -> list[str]:
    """The Procfile's `web:` command as argv: run by bash, as Heroku runs it, with the runtime
    venv first on PATH, as the platforms' builds install it."""
    return ["bash", "-c", f'PATH={shlex.quote(str(RUNTIME_VENV / "bin"))}:"$PATH"\n'
            + procfile_web()]
