"""What only the PostgreSQL store has: its schema and migrations, TLS, outages, purges, pools."""

from __future__ import annotations

import multiprocessing
import os
import threading
from urllib.parse import urlsplit

import psycopg
import pytest

from sandbox.devtools import free_port
from services.errors import StoreUnavailable
from services.legs.rules import Retention
from services.store.open import open_stores
from services.store.postgres import purge
from services.store.postgres.database import PostgresDatabase
from services.store.postgres.legs import PostgresStore
from services.store.postgres.schema import MIGRATIONS
from tests.store.scenario import ev, sid
from tests.store.support import StoreFactory
from tests.support.clock import FakeClock
from tests.support.postgres_server import table_names, temporary_schema, with_schema
from tests.support.tcp_proxy import silent_port, tcp_proxy

pytestmark = pytest.mark.postgres
TABLES = {"callrelay_schema", "callrelay_legs", "callrelay_tombstones", "callrelay_registry",
          "callrelay_conferences", "callrelay_conference_participants",
          "callrelay_conference_tombstones", "callrelay_outbox", "callrelay_leases",
          "callrelay_message_history", "callrelay_message_history_calls"}
RETENTION = Retention(leg_retention_s=60, max_call_duration_s=600)


def versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM callrelay_schema "
                                           "ORDER BY version").fetchall()]


def test_every_table_is_callrelays_own_and_the_schema_version_is_recorded(
        postgres_factory: StoreFactory) -> None:
    # DATABASE_URL is often the app's own database: nothing callrelay makes may clash with it.
    postgres_factory().ping()
    assert table_names(postgres_factory.location) == TABLES
    assert versions(postgres_factory.location) == [1]


def test_instances_starting_at_once_create_the_schema_once(postgres_database: str) -> None:
    with temporary_schema(postgres_database) as url:
        stores = [PostgresStore(PostgresDatabase(url), Retention()) for _ in range(6)]
        barrier = threading.Barrier(len(stores))
        failures: list[BaseException] = []

        def start(store: PostgresStore) -> None:
            barrier.wait()
            try:
                store.apply(ev(sid(), "ringing"))
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=start, args=(s,)) for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for store in stores:
            store.close()
        assert failures == []
        assert versions(url) == list(range(1, len(MIGRATIONS) + 1))


def test_a_schema_a_newer_callrelay_migrated_is_left_alone(postgres_factory: StoreFactory
                                                          ) -> None:
    postgres_factory().ping()
    with psycopg.connect(postgres_factory.location, autocommit=True) as conn:
        conn.execute("INSERT INTO callrelay_schema VALUES (99)")
    store = postgres_factory()  # an older release during a rollback: it starts and works
    leg = sid()
    assert store.apply(ev(leg, "ringing")).status == "ringing"
    assert versions(postgres_factory.location) == [1, 99]


def test_sslmode_in_the_url_is_honoured(postgres_database: str) -> None:
    with psycopg.connect(postgres_database) as conn:
        if conn.execute("SHOW ssl").fetchone() != ("off",):
            pytest.skip("the test server offers TLS: sslmode=require would succeed")
    joiner = "&" if "?" in postgres_database else "?"
    # libpq's default, `prefer`, falls back to a plain connection here (as it negotiates TLS
    # with a server that offers it, Heroku's); `require` refuses a server without TLS.
    PostgresStore(PostgresDatabase(postgres_database), Retention()).ping()
    refused = PostgresStore(PostgresDatabase(postgres_database + joiner + "sslmode=require"),
                            Retention())
    with pytest.raises(StoreUnavailable):
        refused.ping()
    refused.close()


def test_heroku_s_postgres_scheme_opens_the_same_store(postgres_factory: StoreFactory) -> None:
    leg = sid()
    postgres_factory().apply(ev(leg, "ringing", from_="client:alice", direction="inbound"))
    url = postgres_factory.location.replace("postgresql://", "postgres://", 1)
    stores = open_stores(url, Retention())
    try:
        assert [g.call_sid for g in stores.legs.live_sdk_legs("alice")] == [leg]
    finally:
        stores.close()


def test_an_unreachable_database_is_store_unavailable_and_names_no_secret() -> None:
    store = PostgresStore(PostgresDatabase(
        f"postgresql://callrelay:s3cret@127.0.0.1:{free_port()}/db"), Retention())
    leg = sid()
    for call in (lambda: store.apply(ev(leg, "ringing")), lambda: store.get(leg), store.ping):
        with pytest.raises(StoreUnavailable) as caught:
            call()
        assert "s3cret" not in caught.value.message and "127.0.0.1" not in caught.value.message
    store.close()


def test_a_server_that_never_answers_is_store_unavailable() -> None:
    with silent_port() as port:
        store = PostgresStore(PostgresDatabase(f"postgresql://u@127.0.0.1:{port}/db"),
                              Retention())
        with pytest.raises(StoreUnavailable):
            store.ping()
        store.close()


def test_the_store_recovers_by_itself_when_the_database_comes_back(
        postgres_factory: StoreFactory) -> None:
    server = urlsplit(postgres_factory.location)
    with tcp_proxy((server.hostname or "127.0.0.1", server.port or 5432)) as proxy:
        url = postgres_factory.location.replace(f":{server.port}/", f":{proxy.port}/", 1)
        store = PostgresStore(PostgresDatabase(url), Retention())
        try:
            before = sid()
            store.apply(ev(before, "ringing"))
            proxy.stop()
            with pytest.raises(StoreUnavailable):
                store.apply(ev(sid(), "ringing"))
            proxy.start()
            # The same object, no restart: the next call works, and nothing was lost.
            assert store.apply(ev(before, "in-progress")).status == "in-progress"
            # Again with no failing call in between, and a pool grown to its size by calls that
            # overlapped: every pooled connection is dead, and the caller does not see it.
            grow_the_pool(store.db)
            proxy.stop()
            proxy.start()
            assert store.get(before) is not None
        finally:
            store.close()


def grow_the_pool(db: PostgresDatabase, size: int = 4) -> None:
    """Overlapping queries, so that the pool opens `size` connections."""
    barrier = threading.Barrier(size)

    def query() -> None:
        barrier.wait()
        db.rows("SELECT pg_sleep(0.2)")

    threads = [threading.Thread(target=query) for _ in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)


def count_rows(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def test_expired_rows_are_purged_by_writes_a_batch_at_a_time(postgres_factory: StoreFactory,
                                                             clock: FakeClock) -> None:
    store = postgres_factory(RETENTION, clock)
    legs = [sid() for _ in range(purge.PURGE_BATCH + 20)]
    for leg in legs:
        store.apply(ev(leg, "ringing"))
    clock.advance(RETENTION.max_call_duration_s + purge.PURGE_EVERY_S + 1)
    # No cron: the next write purges, a batch of expired rows, then the next write again.
    store.apply(ev(sid(), "ringing"))
    assert count_rows(postgres_factory.location, "callrelay_legs") == 20 + 1
    store.apply(ev(sid(), "ringing"))
    assert count_rows(postgres_factory.location, "callrelay_legs") == 2
    assert [store.get(leg) for leg in legs[:3]] == [None] * 3


def test_the_purge_buries_a_leg_whose_end_never_came(postgres_factory: StoreFactory,
                                                     clock: FakeClock) -> None:
    store = postgres_factory(RETENTION, clock)
    silent = sid()
    store.apply(ev(silent, "in-progress", from_="client:alice", direction="inbound"))
    clock.advance(RETENTION.max_call_duration_s + 1)
    store.purge()  # expired a second ago: left for a writer whose clock is a little behind
    assert count_rows(postgres_factory.location, "callrelay_legs") == 1
    clock.advance(60)
    assert store.purge() == 1
    assert count_rows(postgres_factory.location, "callrelay_legs") == 0
    # Its tombstone says it ended when it expired, as completed, and a replay records nothing.
    replayed = store.apply(ev(silent, "ringing", from_="client:alice", direction="inbound"))
    assert (replayed.status, replayed.ended_at, replayed.forgotten) == (
        "completed", clock.now - 61, True)
    assert store.get(silent) is None and store.live_sdk_legs("alice") == []


def test_a_pool_holds_at_most_its_size_of_connections(postgres_database: str) -> None:
    name = f"callrelay_pool_{os.getpid()}_{free_port()}"
    with temporary_schema(postgres_database) as url:
        db = PostgresDatabase(url + f"&application_name={name}", pool_size=2)
        db.rows("SELECT 1")
        barrier = threading.Barrier(6)
        seen: list[int] = []

        def query() -> None:
            barrier.wait()
            seen.append(int(db.rows("SELECT count(*) FROM pg_stat_activity "
                                    "WHERE application_name = %s AND pg_sleep(0.05) IS NOT NULL",
                                    (name,))[0][0]))

        threads = [threading.Thread(target=query) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        db.close()
    assert len(seen) == 6 and max(seen) <= 2


def _in_child(store: PostgresStore, leg: str) -> None:
    """Runs in a forked child: its own connections, none of the parent's touched."""
    store.apply(ev(leg, "in-progress"))
    store.close()


def test_a_forked_process_opens_its_own_connections(postgres_factory: StoreFactory) -> None:
    store = postgres_factory()
    leg = sid()
    store.apply(ev(leg, "ringing"))
    child = multiprocessing.get_context("fork").Process(target=_in_child, args=(store, leg))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    # The parent's pooled session still works: the child neither used nor closed it.
    got = store.get(leg)
    assert got is not None and got.status == "in-progress"


def test_with_schema_keeps_the_url_s_own_parameters() -> None:
    url = with_schema("postgresql://u@h:5432/db?sslmode=disable", "s1")
    assert url == "postgresql://u@h:5432/db?sslmode=disable&options=-csearch_path%3Ds1"
