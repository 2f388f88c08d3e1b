"""A new SQLite file made ready once, in gunicorn's master, before the workers fork.

Workers that open a brand-new file together race to create it, convert it to WAL and create
its tables (on Heroku every boot starts from a new file). Done once before the fork, there is
nothing left to race on. Only SQLite modules are imported here: the master must not import
ssl (through redis) before the gevent workers monkey-patch it.
"""

from __future__ import annotations

from services.legs.rules import Retention
from services.store.sqlite.conferences import SQLiteConferenceStore
from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.legs import SQLiteStore
from services.store.sqlite.outbox import SQLiteOutbox
from services.store.url import parse_store_url


def prepare_sqlite(store_url: str) -> bool:
    """Create the file, WAL mode and every table of a sqlite:/// store; False for others."""
    location = parse_store_url(store_url)
    if location.kind != "sqlite":
        return False
    db = SQLiteDatabase(location.target)
    try:
        SQLiteStore(db, Retention())
        SQLiteConferenceStore(db, Retention())
        SQLiteOutbox(db)
    finally:
        db.close()  # no connection may cross the fork
    return True
