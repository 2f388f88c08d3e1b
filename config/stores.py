"""Where the registry lives: STORE_URL, else REDIS_URL, else DATABASE_URL, else SQLite on local
disk."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from config.reader import EnvReader
from services.store.redis.topology import RedisTopology, parse_sentinels
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


def read_redis_topology(reader: EnvReader, store_url: str) -> RedisTopology:
    """REDIS_CLUSTER, REDIS_SENTINELS with REDIS_SENTINEL_MASTER, REDIS_MIN_REPLICAS: how the
    Redis store reaches its data. Each is refused, in one line, unless the store is Redis."""
    cluster = reader.flag("REDIS_CLUSTER") or False
    sentinels_text, master = reader.optional("REDIS_SENTINELS"), \
        reader.optional("REDIS_SENTINEL_MASTER")
    min_replicas = reader.whole("REDIS_MIN_REPLICAS", 0, minimum=0, maximum=10)
    is_redis = parse_store_url(store_url).kind == "redis" if store_url else False
    asked = [name for name, given in (("REDIS_CLUSTER", cluster),
                                      ("REDIS_SENTINELS", sentinels_text),
                                      ("REDIS_MIN_REPLICAS", min_replicas)) if given]
    if asked and not is_redis:
        reader.problem(f"{asked[0]} is set but the store is not Redis: set STORE_URL (or "
                       "REDIS_URL) to a redis:// or rediss:// URL")
        return RedisTopology()
    sentinels: tuple[tuple[str, int], ...] = ()
    if sentinels_text:
        try:
            sentinels = parse_sentinels(sentinels_text)
        except ValueError as exc:
            reader.problem(f"REDIS_SENTINELS is malformed: {exc}")
    if bool(sentinels_text) != bool(master):
        reader.problem("REDIS_SENTINELS and REDIS_SENTINEL_MASTER must be set together")
    if cluster and sentinels_text:
        reader.problem("REDIS_CLUSTER and REDIS_SENTINELS cannot both be set: a cluster "
                       "fails over by itself")
    if cluster and store_url.startswith("unix://"):
        reader.problem("REDIS_CLUSTER is set but the Redis URL is a unix socket: give one "
                       "node's redis:// URL")
    if cluster:
        return RedisTopology("cluster", min_replicas=min_replicas)
    if sentinels and master:
        return RedisTopology("sentinel", sentinels, master, min_replicas)
    return RedisTopology(min_replicas=min_replicas)
