"""The leg rules (services/legs/rules.py) as one SQL statement: an upsert that merges in place.

Several instances write the same leg at once, so the merge cannot be read, folded in Python and
written back: two writers would both read the old row and one update would be lost. Instead
`INSERT … ON CONFLICT DO UPDATE` folds the event into whatever row is there when the statement
gets the row's lock, with the same rules as `merge`: the status only moves forward, a terminal
status is final, known attributes are kept and missing ones filled in, and the identity follows
the merged attributes. A row past its retention is a tombstone until the purge turns it into
one (`tombstone` in services/legs/rules.py), then counts as absent. The tombstone check sits in
the same statement, and so does the tombstone of a leg that ends. The statement is generated
from the rules' own constants, and the store contract tests hold it to `merge`.
"""

from __future__ import annotations

from services.legs.model import CLIENT_PREFIX, STATUS_RANK, TERMINAL
from services.legs.rules import EXPIRED_STATUS

ATTRIBUTES = ("parent_sid", "account_sid", "from_addr", "to_addr", "direction")
COLUMNS = ("call_sid, parent_sid, account_sid, from_addr, to_addr, direction, status, "
           "identity, updated_at, ended_at")

# The stored row, while retained; NULL otherwise (a row past retention starts afresh).
RETAINED = "l.expires_at > %(now)s"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _rank(column: str) -> str:
    whens = " ".join(f"WHEN {_quote(s)} THEN {r}" for s, r in STATUS_RANK.items())
    return f"(CASE {column} {whens} END)"


def _kept(column: str) -> str:
    """The stored value while retained, else the event's: first known wins."""
    return f"coalesce(CASE WHEN {RETAINED} THEN l.{column} END, excluded.{column})"


def _client(address: str) -> str:
    """client_identity(address): what follows `client:`, or NULL."""
    n = len(CLIENT_PREFIX)
    return (f"nullif(CASE WHEN left({address}, {n}) = {_quote(CLIENT_PREFIX)} "
            f"THEN substr({address}, {n + 1}) END, '')")


def _identity() -> str:
    """sdk_identity over the merged attributes `m`: From on an inbound leg, To otherwise."""
    inbound = ("CASE WHEN m.direction IS NOT NULL THEN m.direction = 'inbound' "
               "ELSE m.parent_sid IS NULL END")
    return f"CASE WHEN {inbound} THEN {_client('m.from_addr')} ELSE {_client('m.to_addr')} END"


_TERMINAL = ", ".join(_quote(s) for s in sorted(TERMINAL))
# The status stays when the stored leg has ended or the event's rank is not higher.
_STATUS = (f"CASE WHEN {RETAINED} AND (l.status IN ({_TERMINAL}) "
           f"OR %(rank)s <= {_rank('l.status')}) THEN l.status ELSE excluded.status END")
# Changed: a row past retention is replaced; a retained one when its status moves or a
# missing attribute arrives (merge returns `current` itself otherwise, and nothing is written).
_CHANGED = " OR ".join([
    f"NOT ({RETAINED})",
    f"(l.status NOT IN ({_TERMINAL}) AND %(rank)s > {_rank('l.status')})",
    *(f"(l.{a} IS NULL AND excluded.{a} IS NOT NULL)" for a in ATTRIBUTES),
])
_BURIED = ("EXISTS (SELECT 1 FROM callrelay_tombstones t "
           "WHERE t.call_sid = %(sid)s AND t.expires_at > %(now)s)")
# When an expired row's tombstone runs out: counted from the end, or from the expiry of a leg
# whose end was never reported.
_TOMB_UNTIL = "coalesce({t}.ended_at, {t}.expires_at) + %(tombstone_s)s"
# An expired row not purged yet stands for the tombstone the purge will write.
_EXPIRED_BURIED = ("EXISTS (SELECT 1 FROM callrelay_legs x WHERE x.call_sid = %(sid)s "  # noqa: S608
                   f"AND x.expires_at <= %(now)s AND {_TOMB_UNTIL.format(t='x')} > %(now)s)")

# Parameters: sid, parent_sid, account_sid, from_addr, to_addr, direction, status, identity,
# ended_at, expires_at (the leg as merge(None, event) makes it), rank (the event's status rank),
# now, retention_s, max_call_s and tombstone_s. Built from constants, never from input.
APPLY = f"""
WITH leg AS (
    INSERT INTO callrelay_legs AS l (call_sid, parent_sid, account_sid, from_addr, to_addr,
                                     direction, status, identity, updated_at, ended_at,
                                     expires_at)
    SELECT %(sid)s::text, %(parent_sid)s::text, %(account_sid)s::text, %(from_addr)s::text,
           %(to_addr)s::text, %(direction)s::text, %(status)s::text, %(identity)s::text,
           %(now)s::float8, %(ended_at)s::float8, %(expires_at)s::float8
    -- A tombstone without a retained row: the leg was forgotten; nothing is written.
    WHERE EXISTS (SELECT 1 FROM callrelay_legs r
                  WHERE r.call_sid = %(sid)s AND r.expires_at > %(now)s)
       OR NOT ({_BURIED} OR {_EXPIRED_BURIED})
    ON CONFLICT (call_sid) DO UPDATE SET
        (parent_sid, account_sid, from_addr, to_addr, direction, status, identity, updated_at,
         ended_at, expires_at) = (
        SELECT m.parent_sid, m.account_sid, m.from_addr, m.to_addr, m.direction, m.status,
               {_identity()}, %(now)s, m.ended_at,
               coalesce(m.ended_at + %(retention_s)s, %(now)s + %(max_call_s)s)
        FROM (SELECT {_kept('parent_sid')} AS parent_sid,
                     {_kept('account_sid')} AS account_sid,
                     {_kept('from_addr')} AS from_addr,
                     {_kept('to_addr')} AS to_addr,
                     {_kept('direction')} AS direction,
                     {_STATUS} AS status,
                     {_kept('ended_at')} AS ended_at) AS m)
    WHERE ({_CHANGED}) AND ({RETAINED} OR NOT ({_BURIED}
                                          OR {_TOMB_UNTIL.format(t='l')} > %(now)s))
    RETURNING l.call_sid, l.parent_sid, l.account_sid, l.from_addr, l.to_addr, l.direction,
              l.status, l.identity, l.updated_at, l.ended_at
), buried AS (
    -- Written with the leg that ends, in the same statement: from here on no event can make
    -- this SID live again, whenever the leg's row goes.
    INSERT INTO callrelay_tombstones (call_sid, status, ended_at, expires_at)
    SELECT call_sid, status, ended_at, ended_at + %(tombstone_s)s FROM leg
    WHERE ended_at IS NOT NULL
    ON CONFLICT (call_sid) DO UPDATE SET status = excluded.status,
        ended_at = excluded.ended_at, expires_at = excluded.expires_at
)
SELECT {COLUMNS} FROM leg
"""  # noqa: S608

# When APPLY wrote nothing (the event added nothing, or the SID is a tombstone): the leg as it
# is now, in a statement of its own, so that it sees a concurrent writer's commit. The last
# column ranks the answers: the retained row, else the tombstone an expired row stands for,
# else the tombstone.
CURRENT = f"""
SELECT {COLUMNS}, 0 FROM callrelay_legs WHERE call_sid = %(sid)s AND expires_at > %(now)s
UNION ALL
SELECT call_sid, NULL, NULL, NULL, NULL, NULL,
       CASE WHEN ended_at IS NULL THEN {_quote(EXPIRED_STATUS)} ELSE status END, NULL,
       coalesce(ended_at, expires_at), coalesce(ended_at, expires_at), 1
FROM callrelay_legs l WHERE call_sid = %(sid)s AND expires_at <= %(now)s
  AND {_TOMB_UNTIL.format(t='l')} > %(now)s
UNION ALL
SELECT call_sid, NULL, NULL, NULL, NULL, NULL, status, NULL, ended_at, ended_at, 2
FROM callrelay_tombstones WHERE call_sid = %(sid)s AND expires_at > %(now)s
"""  # noqa: S608

# The purge: expired rows go a batch at a time, each leaving its tombstone (a leg whose end
# was never reported is buried as `completed`, ended then), unless that ran out already.
# Rows expired for less than `grace_s` stay: a writer whose clock runs a little behind the
# purger's may still see them retained.
PURGE = f"""
WITH gone AS (
    DELETE FROM callrelay_legs WHERE call_sid IN (
        SELECT call_sid FROM callrelay_legs WHERE expires_at <= %(before)s
        LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
    AND expires_at <= %(before)s
    RETURNING call_sid, status, ended_at IS NULL AS silent,
              coalesce(ended_at, expires_at) AS ended_at
), buried AS (
    INSERT INTO callrelay_tombstones (call_sid, status, ended_at, expires_at)
    SELECT call_sid, CASE WHEN silent THEN {_quote(EXPIRED_STATUS)} ELSE status END,
           ended_at, ended_at + %(tombstone_s)s FROM gone
    WHERE ended_at + %(tombstone_s)s > %(now)s
    ON CONFLICT (call_sid) DO NOTHING
)
SELECT count(*) FROM gone
"""  # noqa: S608
