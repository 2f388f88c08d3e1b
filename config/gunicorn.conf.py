"""gunicorn settings for the Procfile: PORT and WEB_CONCURRENCY as Heroku and Render set them."""

import sys
from typing import Any

from gunicorn.glogging import Logger

from config import metrics_dir
from config.settings import ConfigError, Settings

# Fail fast, in the master, with one line per missing or malformed variable (all of them at
# once), instead of every worker crashing with a traceback.
try:
    serving = Settings.from_env().serving
except ConfigError as exc:
    sys.stderr.write("".join(f"callrelay: configuration error: {problem}\n"
                             for problem in exc.problems))
    sys.exit(2)

# /metrics sums every worker's counters (prometheus-client's multiprocess mode): the directory is
# set here, in the master, so that workers see it before they import prometheus_client.
metrics_dir.prepare()
metrics_dir.count_worker_exits()
child_exit = metrics_dir.child_exit
on_exit = metrics_dir.on_exit

# 0.0.0.0:$PORT, as the platforms route to; HOST=127.0.0.1 (scripts/run) keeps a laptop's
# service to itself.
bind = serving.bind
# One worker per core: a worker is one process running Python on one core at a time.
workers = serving.workers
# gevent: a request in flight is a greenlet, not a thread, so a /notify waiting hundreds of ms
# on Twilio, or a client that sends half a request and stalls, costs a few KiB and no worker
# capacity. The worker monkey-patches sockets and threading when it starts, before the app is
# built; SQLite's blocking calls run off the event loop (services/store/sqlite/writes.py). See
# docs/sizing.md.
worker_class = "gevent"
# Connections (and so requests in flight) per worker; beyond it, connections wait in the
# listen backlog.
worker_connections = serving.connections
# Longer than the /notify deadline (15 s by default), so a slow Twilio never gets a worker killed.
timeout = 30
graceful_timeout = 20
keepalive = 5
# No preload: each worker builds its own Twilio session and store connections after the fork.
preload_app = False
# The control socket lives at one fixed path per user: two instances on a machine would fight.
control_socket_disable = True
# No gunicorn access log (its logger is silenced below: a logconfig_dict turns it on): the app
# logs every request as one JSON line with request id, route, status, duration and call SID
# (web/request_logs.py), so both would be duplicates.
accesslog = None


class NoAccessLog(Logger):
    """gunicorn's logger without the access log: with a logconfig_dict, gunicorn would still
    build each request's access-log fields (the whole WSGI environ) for the silenced logger to
    drop them, 5-7 % of a status callback's CPU (see BENCHMARKS.md)."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        """Log nothing: web/request_logs.py logs every request."""


logger_class = NoAccessLog

errorlog = "-"
# gunicorn's own lines as JSON, like the app's (services/observability/logs.py).
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "services.observability.logs.JSONFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json",
                            "stream": "ext://sys.stdout"}},
    "root": {"handlers": [], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}
# X-Forwarded-* are applied once, by ProxyFix with TRUSTED_PROXY_HOPS; gunicorn trusts no one.
forwarded_allow_ips = ""
