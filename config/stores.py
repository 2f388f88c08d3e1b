"""Where the registry lives: STORE_URL, else REDIS_URL, else DATABASE_URL, else SQLite on local
disk."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from config.reader import EnvReader
from services.store.url import parse_store_url

DEFAULT_STORE_URL = "sqlite:///data/callrelay.sqlite3"
# PostgreSQL connections per worker process (docs/sizing.md#postgresql-connections).
DEFAULT_POOL_SIZE = 4


def read_store_url(reader: EnvReader) -> str:
    """STORE_URL, else REDIS_URL, else DATABASE_URL (Heroku Postgres, Render PostgreSQL), else
    the default SQLite file; REDIS_TLS_VERIFY applied."""
    store_url, redis_url = reader.optional("STORE_URL"), reader.optional("REDIS_URL")
    database_url = reader.optional("DATABASE_URL")
    name = "STORE_URL" if store_url else "REDIS_URL" if redis_url else "DATABASE_URL"
    url = store_url or redis_url or database_url or DEFAULT_STORE_URL
    try:
        parse_store_url(url)
    except ValueError as exc:
        reader.problem(f"{name} is malformed: {exc}")
        return DEFAULT_STORE_URL
    verify = reader.flag("REDIS_TLS_VERIFY")
    if url.startswith("rediss://") and verify is False:
        # Heroku's Key-Value Store serves TLS with a self-signed certificate, and sets
        # REDIS_URL itself (rotating it), so the URL cannot carry the option.
        url += ("&" if "?" in url else "?") + "ssl_cert_reqs=none&ssl_check_hostname=false"
    return url


def read_pool_size(reader: EnvReader) -> int:
    """STORE_POOL_SIZE: a PostgreSQL store's connections per worker process."""
    return reader.whole("STORE_POOL_SIZE", DEFAULT_POOL_SIZE, minimum=1, maximum=100)


def store_password(url: str) -> str | None:
    """The password a store URL holds (DATABASE_URL always has one), to keep it out of logs."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None
