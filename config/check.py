"""Check the configuration before gunicorn starts: `python -m config.check` (the Procfile's
first step). gunicorn itself reads WEB_CONCURRENCY with int() as it is imported, so a
malformed value would crash it with a traceback before config/gunicorn.conf.py could speak."""

from __future__ import annotations

import sys

from config.settings import ConfigError, Settings


def main() -> int:
    """Exit 0 when every variable is well-formed; else 2, with one line per problem."""
    try:
        Settings.from_env()
    except ConfigError as exc:
        sys.stderr.write("".join(f"callrelay: configuration error: {problem}\n"
                                 for problem in exc.problems))
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
