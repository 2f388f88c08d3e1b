"""Finding the test PostgreSQL server, and databases and schemas of a test's own on it.

Tests skip without a server unless CALLRELAY_REQUIRE_POSTGRES=1 (CI) makes them fail instead.
Every database and schema made here has a unique name and is dropped by the test that made it:
the server is shared with other runs.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PREFIX = "callrelay_test_"


def _unavailable(reason: str) -> None:
    """Skip the test, or fail it when CALLRELAY_REQUIRE_POSTGRES=1 (CI must not skip silently)."""
    if os.environ.get("CALLRELAY_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (CALLRELAY_REQUIRE_POSTGRES=1)")
    pytest.skip(reason)


def server_url() -> str:
    """The URL of a database on the test server to administer from, once it answers."""
    url = os.environ.get("CALLRELAY_TEST_POSTGRES_URL", DEFAULT_URL)
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error:
        shown = url.split("@")[-1]  # never print a password
        _unavailable(f"no PostgreSQL server at {shown}: set CALLRELAY_TEST_POSTGRES_URL "
                     "or start PostgreSQL")
    return url


def unique_name() -> str:
    return PREFIX + uuid.uuid4().hex[:16]


def with_database(url: str, database: str) -> str:
    """`url` naming another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def with_schema(url: str, schema: str) -> str:
    """`url` whose sessions find (and create) tables in `schema`: libpq's `options`."""
    option = quote(f"-csearch_path={schema}")
    parts = urlsplit(url)
    query = f"{parts.query}&options={option}" if parts.query else f"options={option}"
    return urlunsplit(parts._replace(query=query))


def _admin(url: str, statement: sql.Composable) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(statement)


@contextlib.contextmanager
def temporary_database(url: str | None = None) -> Iterator[str]:
    """A new, empty database for the duration of the block; its URL. Dropped after, with
    whatever sessions are still on it (a killed worker's, a pool not closed)."""
    admin = url or server_url()
    name = unique_name()
    _admin(admin, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin, name)
    finally:
        _admin(admin, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@contextlib.contextmanager
def temporary_schema(database_url: str) -> Iterator[str]:
    """A new schema in `database_url`'s database; the URL whose sessions use it. Dropped after."""
    name = unique_name()
    _admin(database_url, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield with_schema(database_url, name)
    finally:
        _admin(database_url, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(name)))


def table_names(url: str) -> set[str]:
    """The tables the URL's sessions see in their own schema."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = current_schema()").fetchall()
    return {r[0] for r in rows}
