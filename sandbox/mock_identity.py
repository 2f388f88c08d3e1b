"""Is the Twilio mock that scripts/run started the program answering TWILIO_API_BASE_URL?

    python -m sandbox.mock_identity URL PID     # exit 0 once it is; 1 if the mock dies first,
                                                # another program answers, or 10 s pass

Any program already on the port (another mock, a stranger) would otherwise pass for it, and
every /notify would then spend its deadline retrying that program. The mock names its process
at IDENTITY_PATH.
"""

from __future__ import annotations

import os
import sys
import time

import requests

from sandbox.twilio_mock import IDENTITY_PATH

WAIT_S = 10.0


def answering_pid(base_url: str) -> int | None:
    """The pid that the program answering at `base_url` gives as a Twilio mock's (0: it is no
    mock); None while nothing answers."""
    try:
        answer = requests.get(base_url.rstrip("/") + IDENTITY_PATH, timeout=2)
    except (requests.ConnectionError, requests.Timeout):
        return None
    try:
        pid = answer.json()["pid"] if answer.status_code == 200 else 0
    except (ValueError, TypeError, KeyError):
        return 0
    return pid if isinstance(pid, int) and pid > 0 else 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def wait_for_mock(base_url: str, pid: int, wait_s: float = WAIT_S) -> bool:
    """True once the mock of process `pid` answers at `base_url`; False as soon as another
    program answers there, the process is gone, or `wait_s` has passed."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and _alive(pid):
        answering = answering_pid(base_url)
        if answering is not None:
            return answering == pid
        time.sleep(0.1)  # nothing answers yet: the mock is starting
    return False


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when the mock of PID answers at URL, else 1."""
    url, pid = argv if argv is not None else sys.argv[1:]
    return 0 if wait_for_mock(url, int(pid)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
