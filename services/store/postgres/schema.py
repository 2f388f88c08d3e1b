"""The PostgreSQL schema, as numbered migrations applied once at start-up by whoever comes first.

Every name starts with `callrelay_`: on Heroku and Render, `DATABASE_URL` is often the app's own
database, shared with other tables. Times are epoch seconds (double precision), as the adapters'
clocks give them. A migration is only ever appended, never edited: a database records the
number it reached in `callrelay_schema`.
"""

from __future__ import annotations

import psycopg

# Two-key advisory lock (namespace, key) held while migrating; any other key of the namespace
# is free for the adapters. 0x63616c6c is "call".
LOCK_NAMESPACE = 0x63616C6C
MIGRATE_KEY = 0

MIGRATIONS: tuple[str, ...] = (
    # 1: legs, tombstones, the registry's birth, conferences, the outbox, named leases and the
    # message history.
    """
    CREATE TABLE callrelay_legs (
        call_sid    text PRIMARY KEY,
        parent_sid  text,
        account_sid text,
        from_addr   text,
        to_addr     text,
        direction   text,
        status      text NOT NULL,
        identity    text,
        updated_at  double precision NOT NULL,
        ended_at    double precision,
        expires_at  double precision NOT NULL
    );
    CREATE INDEX callrelay_legs_parent ON callrelay_legs (parent_sid)
        WHERE parent_sid IS NOT NULL;
    CREATE INDEX callrelay_legs_identity ON callrelay_legs (identity)
        WHERE identity IS NOT NULL AND ended_at IS NULL;
    CREATE INDEX callrelay_legs_open ON callrelay_legs (expires_at) WHERE ended_at IS NULL;
    CREATE INDEX callrelay_legs_expiry ON callrelay_legs (expires_at);
    -- One small row per ended leg, kept far longer than the leg (Retention.tombstone_s): the
    -- SID of a forgotten leg still reads as ended, so a replayed callback cannot revive it.
    CREATE TABLE callrelay_tombstones (
        call_sid   text PRIMARY KEY,
        status     text NOT NULL,
        ended_at   double precision NOT NULL,
        expires_at double precision NOT NULL
    );
    CREATE INDEX callrelay_tombstones_expiry ON callrelay_tombstones (expires_at);
    CREATE TABLE callrelay_registry (
        name  text PRIMARY KEY,
        value double precision NOT NULL
    );
    CREATE TABLE callrelay_conferences (
        conference_sid text PRIMARY KEY,
        friendly_name  text,
        account_sid    text,
        started_at     double precision,
        ended_at       double precision,
        updated_at     double precision NOT NULL,
        expires_at     double precision NOT NULL
    );
    CREATE INDEX callrelay_conferences_name ON callrelay_conferences (friendly_name)
        WHERE friendly_name IS NOT NULL;
    CREATE INDEX callrelay_conferences_expiry ON callrelay_conferences (expires_at);
    -- One small row per forgotten conference (ended, or expired without an end), kept far
    -- longer than the conference (Retention.tombstone_s): a replayed callback cannot revive it.
    CREATE TABLE callrelay_conference_tombstones (
        conference_sid text PRIMARY KEY,
        ended_at       double precision NOT NULL,
        expires_at     double precision NOT NULL
    );
    CREATE INDEX callrelay_conference_tombstones_expiry
        ON callrelay_conference_tombstones (expires_at);
    CREATE TABLE callrelay_conference_participants (
        conference_sid text NOT NULL,
        call_sid       text NOT NULL,
        joined_seq     bigint,
        joined_at      double precision,
        left_seq       bigint,
        left_at        double precision,
        PRIMARY KEY (conference_sid, call_sid)
    );
    -- `due_at`: when the event may next be leased (now when new, the lease's end while a
    -- worker delivers it, the backoff's end after a failure). `state`: pending, done (kept
    -- without its body to recognise a duplicate) or dead. `aside`: set aside after refusals,
    -- it no longer holds its stream.
    CREATE TABLE callrelay_outbox (
        seq         bigserial PRIMARY KEY,
        id          text NOT NULL UNIQUE,
        stream      text NOT NULL,
        body        text NOT NULL,
        state       text NOT NULL DEFAULT 'pending',
        attempts    integer NOT NULL DEFAULT 0,
        due_at      double precision NOT NULL,
        lease_owner text,
        last_error  text,
        created_at  double precision NOT NULL,
        closed_at   double precision,
        aside       boolean NOT NULL DEFAULT false
    );
    CREATE INDEX callrelay_outbox_pending ON callrelay_outbox (stream, seq)
        WHERE state = 'pending';
    CREATE INDEX callrelay_outbox_aside ON callrelay_outbox (due_at)
        WHERE state = 'pending' AND aside;
    CREATE INDEX callrelay_outbox_closed ON callrelay_outbox (state, closed_at)
        WHERE state <> 'pending';
    CREATE TABLE callrelay_leases (
        name       text PRIMARY KEY,
        expires_at double precision NOT NULL
    );
    -- Each call's messages (services/store/history.py), and one row per call with a history:
    -- when the whole history may go (a call's legs go together).
    CREATE TABLE callrelay_message_history (
        call_sid        text NOT NULL,
        entry_id        text NOT NULL,
        at              double precision NOT NULL,
        direction       text NOT NULL,
        leg_sid         text NOT NULL,
        status          text NOT NULL,
        size            integer NOT NULL,
        sid             text,
        leg             text,
        identity        text,
        idempotency_key text,
        attempts        integer,
        error           text,
        content         text,
        PRIMARY KEY (call_sid, entry_id)
    );
    CREATE INDEX callrelay_message_history_order
        ON callrelay_message_history (call_sid, at, entry_id);
    CREATE TABLE callrelay_message_history_calls (
        call_sid   text PRIMARY KEY,
        expires_at double precision NOT NULL
    );
    CREATE INDEX callrelay_message_history_expiry
        ON callrelay_message_history_calls (expires_at);
    """,
)


def migrate(conn: psycopg.Connection) -> int:
    """Bring the database to the latest schema; returns the version it is at.

    Safe when several instances start at once: one transaction under an advisory lock, so the
    others wait for it and then find nothing left to do. A database migrated by a newer
    callrelay (a rollback during a deploy) is left alone: migrations only ever add.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE, MIGRATE_KEY))
        # A DDL statement may wait for a lock a long while on a busy database: no timeout here.
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute("CREATE TABLE IF NOT EXISTS callrelay_schema (version integer NOT NULL)")
        row = conn.execute("SELECT max(version) FROM callrelay_schema").fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        for version in range(current + 1, len(MIGRATIONS) + 1):
            conn.execute(MIGRATIONS[version - 1])
            conn.execute("INSERT INTO callrelay_schema (version) VALUES (%s)", (version,))
        return max(current, len(MIGRATIONS))
