"""Developer helpers shared by the tests and the benchmarks: the repository root, free ports,
and the Procfile's web command."""

from __future__ import annotations

import shlex
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def procfile_command() -> list[str]:
    """The Procfile's `web:` command as argv, run with this interpreter's gunicorn."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            argv = shlex.split(line.removeprefix("web:"))
            if argv[:1] != ["gunicorn"]:
                raise ValueError(f"the Procfile's web command is not gunicorn: {line}")
            return [sys.executable, "-m", "gunicorn", *argv[1:]]
    raise ValueError("the Procfile has no web: line")
