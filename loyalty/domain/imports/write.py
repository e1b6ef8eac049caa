"""Writing one checked batch in the caller's transaction (never committed here).

Purchases are recorded under the API client `import`, so `(import, external_id)` is unique:
writing the same rows again writes nothing twice. Each new purchase with points gets one `earn`
entry with its `balance_after`, and its member's balance moves under a row lock, through
`ledger.py`. Two ways, the same books:

- direct (PostgreSQL, none of the batch's purchases there yet, the usual case of a first import):
  members looked up or created in bulk, locked in id order, then binary COPY straight into
  purchases and ledger entries with ids and `balance_after` worked out in Python. Where the role
  may, the per-row foreign-key triggers are skipped for these statements
  (`session_replication_role`, as pg_restore --disable-triggers does) and what they would have
  checked is proven in the same transaction (`_prove_purchase_references`,
  `_prove_entry_references`) before the setting is put back; all of it in a savepoint, rolled
  back when the batch needs the staging way.
- staging (SQLite, re-runs, overlaps): COPY (executemany on SQLite) into a temporary table, then
  INSERT … SELECT … ON CONFLICT DO NOTHING and the entries by SQL, foreign-key triggers on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.errors import UniqueViolation
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    insert,
    select,
    text,
)
from sqlalchemy.orm import Session

from loyalty.domain import ledger, tally
from loyalty.domain.clients import system_actor
from loyalty.domain.imports.parse import Row
from loyalty.domain.sql import bigint_array
from loyalty.models import ApiClient, Member, Purchase
from loyalty.models.types import UTCDateTime

IMPORT_ACTOR = "import"  # the API client purchases and ledger entries are recorded under
PREVIEW_CHUNK = 900  # values per IN list of a check (SQLite's old limit is 999 variables)


class ImportReferenceError(RuntimeError):
    """A batch would have written a row that points nowhere (never expected: a bug). The
    caller rolls the batch back."""


@dataclass
class Target:
    """What every batch of one import is written with. `members` maps customer_ref → member id
    for members of committed batches (their refs are checked again under the lock)."""

    client_id: int
    currency: str
    now: datetime
    members: dict[str, int] = field(default_factory=dict)

    def committed(self, written: Written) -> None:
        """Remembers the members of a batch the caller has committed: later batches naming
        them need no look-up."""
        self.members.update(written.members)


@dataclass
class Written:
    """What one batch wrote (the caller adds it to the import's result once committed)."""

    imported: int = 0
    duplicates: int = 0
    members_created: int = 0
    points_earned: int = 0
    direct: bool = False
    row_triggers_skipped: bool = False
    members: dict[str, int] = field(default_factory=dict)  # customer_ref → id, the direct path's


def prepare(session: Session, *, currency: str, now: datetime) -> Target:
    """The import's API client, created on first use (flushed, not committed)."""
    client_id = system_actor(session, IMPORT_ACTOR, "(import)").client_id
    assert client_id is not None
    return Target(client_id=client_id, currency=currency, now=now)


def write_batch(session: Session, rows: list[Row], target: Target) -> Written:
    """Writes one batch of checked rows in the session's transaction, which the caller begins,
    commits or rolls back: the direct way where it can (PostgreSQL), else the staging way.
    Raises ImportReferenceError, and the database's errors. The purchases and points it wrote
    are noted for the service's counters (`tally`), counted once the caller commits."""
    written = None
    if session.get_bind().dialect.name == "postgresql":
        written = _write_direct(session.connection(), rows, target)
    if written is None:
        written = _write_staging(session, rows, target)
    tally.note(session, tally.PURCHASES_RECORDED, written.imported)
    tally.note(session, tally.POINTS_ISSUED, written.points_earned)
    return written


# check -----------------------------------------------------------------------------------------
@dataclass
class Preview:
    """What a check (nothing written) carries from batch to batch: the import's API client if
    there is one yet (else nothing is there from an import), and the customer_refs of earlier
    batches (members by then, or members the import would create)."""

    client_id: int | None
    refs: set[str] = field(default_factory=set)


def prepare_check(session: Session) -> Preview:
    """The `Preview` of a check; reads only (`prepare` would create the API client)."""
    return Preview(session.scalar(select(ApiClient.id).where(ApiClient.name == IMPORT_ACTOR)))


def check_batch(session: Session, rows: list[Row], preview: Preview) -> Written:
    """What `write_batch` would write for this batch, read and not written: the purchases not
    there yet under the import's client, the members created for refs no member has, the points
    those purchases earn (each row's, as the parser worked them out)."""
    refs = list(dict.fromkeys(row[1] for row in rows if row[1] not in preview.refs))
    members = _present(session, Member.external_ref, refs)
    preview.refs.update(refs)
    there: set[str] = set()
    if preview.client_id is not None:
        ids = [row[2] for row in rows]
        there = _present(
            session, Purchase.external_id, ids, Purchase.api_client_id == preview.client_id
        )
    new = [row for row in rows if row[2] not in there]
    return Written(
        imported=len(new),
        duplicates=len(rows) - len(new),
        members_created=len(refs) - len(members),
        points_earned=sum(row[6] for row in new),
    )


def _present(session: Session, column: Any, values: list[str], *where: Any) -> set[str]:
    """Those of `values` that `column` holds (where `where`)."""
    found: set[str] = set()
    for i in range(0, len(values), PREVIEW_CHUNK):
        chunk = values[i : i + PREVIEW_CHUNK]
        found.update(session.scalars(select(column).where(column.in_(chunk), *where)))
    return found


# direct ----------------------------------------------------------------------------------------
class _Fallback(Exception):
    """The direct path cannot write this batch as it stands; the staging path will."""


def _write_direct(conn: Connection, rows: list[Row], target: Target) -> Written | None:
    """The batch written the direct way in a savepoint, or None, the savepoint rolled back, when
    it needs the staging way: a purchase already there (a re-run; one in the middle of the batch
    fails the COPY on the unique index), or a member whose `external_ref` changed meanwhile."""
    raw: Any = conn.connection.driver_connection  # psycopg's own connection
    # A re-run is found before the savepoint: rolling one back costs psycopg its prepared
    # statements (it deallocates them all after any ROLLBACK).
    with raw.cursor() as cur:
        if _any_there(cur, target.client_id, rows):
            return None
    try:
        with conn.begin_nested(), raw.cursor() as cur:
            return _direct(cur, rows, target)
    except (_Fallback, UniqueViolation):
        return None


def _direct(cur: Any, rows: list[Row], target: Target) -> Written:
    """Members found or created and locked, purchases and entries copied, references proven."""
    refs = list(dict.fromkeys(row[1] for row in rows))  # first appearance order
    known, created = _member_ids(cur, refs, target.members, target.now)
    balances = _lock_members(cur, known)
    previous_role = _skip_row_triggers(cur)
    purchase_ids = _reserve_purchase_ids(cur, len(rows))
    member_of = [known[row[1]] for row in rows]
    copied, earnings = _copy_purchases(cur, rows, purchase_ids, member_of, target)
    members = _prove_purchase_references(cur, (copied, len(rows)), set(member_of), target.client_id)
    _prove_entry_references(earnings, set(purchase_ids), members)
    spend: dict[int, int] = {}
    for row, member_id in zip(rows, member_of, strict=True):
        spend[member_id] = spend.get(member_id, 0) + row[4]
    earned, updated = ledger.copy_earnings(
        cur, earnings, balances, spend=spend, client_id=target.client_id,
        actor_name=IMPORT_ACTOR, now=target.now,
    )  # fmt: skip
    if updated != len(spend):
        raise ImportReferenceError(f"updated {updated} of {len(spend)} members")
    if previous_role is not None:
        cur.execute("SELECT set_config('session_replication_role', %s, true)", (previous_role,))
    return Written(
        imported=len(rows),
        members_created=len(created),
        points_earned=earned,
        direct=True,
        row_triggers_skipped=previous_role is not None,
        members=known,
    )


def _any_there(cur: Any, client_id: int, rows: list[Row]) -> bool:
    """Whether the batch's first or last purchase is recorded already: a re-run of a file, which
    the staging path (ON CONFLICT) handles. A purchase in between that is there fails the
    COPY on the unique index instead, and the batch goes the staging path after all."""
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM purchases WHERE api_client_id = %s "
        "AND external_id IN (%s, %s))",
        (client_id, rows[0][2], rows[-1][2]),
    )
    return bool(cur.fetchone()[0])


def _member_ids(
    cur: Any, refs: list[str], members: dict[str, int], now: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    """(every ref of the batch → member id, the ones created now). Unknown refs are looked up,
    then created in the order given (ids follow the file). Raises _Fallback."""
    known = {ref: members[ref] for ref in refs if ref in members}
    created: dict[str, int] = {}

    def look_up(missing: list[str]) -> list[str]:
        """Looks the refs up; returns those still unknown."""
        cur.execute("SELECT external_ref, id FROM members WHERE external_ref = ANY(%s)", (missing,))
        known.update(cur.fetchall())
        return [ref for ref in missing if ref not in known]

    missing = [ref for ref in refs if ref not in known]
    if missing:
        missing = look_up(missing)
    if missing:
        cur.execute(_CREATE_MEMBERS_DIRECT, (now, now, missing))
        created = dict(cur.fetchall())
        known.update(created)
        missing = [ref for ref in missing if ref not in known]
        if missing:  # created by someone else since the first look
            look_up(missing)
    if len(known) != len(refs):
        raise _Fallback("a member could not be found or created")
    return known, created


def _lock_members(cur: Any, known: dict[str, int]) -> dict[int, int]:
    """The batch's members locked in id order (no deadlock with live requests, which lock one
    member each), their refs checked again under the lock: member id → points. Raises
    _Fallback (a member renamed since it was looked up). A member not found is not in the
    result; the proof after the COPY refuses the batch (members are never deleted)."""
    ids = sorted(set(known.values()))
    cur.execute(
        "SELECT id, external_ref, points FROM members WHERE id = ANY(%s::bigint[]) "
        "ORDER BY id FOR UPDATE",
        (bigint_array(ids),),
    )
    balances: dict[int, int] = {}
    for member_id, ref, points in cur:
        if known.get(ref) != member_id:
            raise _Fallback(ref)
        balances[member_id] = points
    return balances


def _skip_row_triggers(cur: Any) -> str | None:
    """Skips the per-row triggers (foreign keys; the append-only ones guard UPDATE and DELETE,
    which an import never does) for the rest of the transaction where the role may: a
    superuser, or `GRANT SET ON PARAMETER session_replication_role`. Returns the setting to
    put back, or None where the role may not (the triggers then check each row)."""
    cur.execute("SAVEPOINT import_role")
    try:
        cur.execute(
            "SELECT current_setting('session_replication_role'), "
            "set_config('session_replication_role', 'replica', true)"
        )
    except psycopg.Error:  # InsufficientPrivilege
        cur.execute("ROLLBACK TO SAVEPOINT import_role")
        return None
    previous = cur.fetchone()[0]
    cur.execute("RELEASE SAVEPOINT import_role")
    return str(previous)


def _reserve_purchase_ids(cur: Any, count: int) -> list[int]:
    cur.execute("SELECT nextval('purchases_id_seq') FROM generate_series(1, %s)", (count,))
    return [r[0] for r in cur]


def _copy_purchases(
    cur: Any, rows: list[Row], purchase_ids: list[int], member_of: list[int], target: Target
) -> tuple[int, list[tuple[int, int, int]]]:
    """Binary COPY of the batch into purchases; returns (the rows the COPY reports written,
    (member, purchase, points) of those that earn). Ids follow the file; the rows go in member
    order (file order within a member), so that a file in time order, whose batches touch most
    members, fills the (member_id, occurred_at) index page by page instead of at random."""
    earnings: list[tuple[int, int, int]] = []
    client_id, currency, now = target.client_id, target.currency, target.now
    with cur.copy(_COPY_PURCHASES) as copy:
        copy.set_types(_PURCHASE_TYPES)
        for i in sorted(range(len(rows)), key=member_of.__getitem__):
            _, _, external_id, at, amount, store, points = rows[i]
            purchase_id, member_id = purchase_ids[i], member_of[i]
            copy.write_row(
                (purchase_id, member_id, client_id, external_id, amount, currency, at, store,
                 points, 0, 0, now)
            )  # fmt: skip
            if points > 0:
                earnings.append((member_id, purchase_id, points))
    return cur.rowcount, earnings


def _prove_purchase_references(
    cur: Any, copied: tuple[int, int], member_ids: set[int], client_id: int
) -> set[int]:
    """What the skipped foreign-key triggers check for the purchases just copied, in this
    transaction: the COPY wrote every row, and the members and the API client they name exist,
    locked FOR KEY SHARE until commit as the triggers lock them (the members are held FOR
    UPDATE already). `copied`: (rows the COPY reported, rows of the batch). Returns the
    members proven. Raises ImportReferenceError."""
    cur.execute(_PROVE_MEMBERS_AND_CLIENT, (bigint_array(sorted(member_ids)), client_id))
    members, clients = cur.fetchone()
    if (copied[0], members, clients) != (copied[1], len(member_ids), 1):
        raise ImportReferenceError(
            f"purchases: {copied[0]} of {copied[1]} copied, {members} of the "
            f"{len(member_ids)} members and {clients} of the 1 API client they name found; "
            "the batch is rolled back"
        )
    return member_ids


def _prove_entry_references(
    earnings: list[tuple[int, int, int]], purchase_ids: set[int], members: set[int]
) -> None:
    """The same for the ledger entries about to be copied: each names a purchase the COPY just
    wrote in this transaction and a member proven above (the API client is the purchases').
    Checked on the values handed to the COPY: reading 50,000 purchases back costs 85 ms a
    batch, 9 % of an import. Raises ImportReferenceError."""
    stray = [
        (member_id, purchase_id)
        for member_id, purchase_id, _ in earnings
        if purchase_id not in purchase_ids or member_id not in members
    ]
    if stray:
        raise ImportReferenceError(
            f"{len(stray)} ledger entries would name a purchase or member not written or not "
            f"found, e.g. (member, purchase) {stray[0]}; the batch is rolled back"
        )


_PROVE_MEMBERS_AND_CLIENT = """
    SELECT (SELECT count(*) FROM (SELECT 1 FROM members WHERE id = ANY(%s::bigint[])
                                  FOR KEY SHARE) m),
           (SELECT count(*) FROM (SELECT 1 FROM api_clients WHERE id = %s FOR KEY SHARE) c)
"""
_COPY_PURCHASES = (
    "COPY purchases (id, member_id, api_client_id, external_id, amount, currency, occurred_at, "
    "store_id, points_earned, returned_amount, points_reversed, created_at) FROM STDIN "
    "(FORMAT BINARY)"
)
_PURCHASE_TYPES = [
    "int8", "int8", "int8", "text", "int8", "text", "timestamptz", "text", "int8", "int8",
    "int8", "timestamptz",
]  # fmt: skip
_CREATE_MEMBERS_DIRECT = """
    INSERT INTO members (external_ref, marketing_consent, points, held, available_floor,
                         created_at, updated_at)
    SELECT u.ref, false, 0, 0, 0, %s, %s FROM unnest(%s::text[]) WITH ORDINALITY AS u(ref, n)
     ORDER BY u.n
    ON CONFLICT (external_ref) DO NOTHING
    RETURNING external_ref, id
"""


# staging ---------------------------------------------------------------------------------------
_meta = MetaData()
_STAGING = Table(
    "import_staging",
    _meta,
    Column("line", Integer),
    Column("customer_ref", Text),
    Column("external_id", Text),
    Column("occurred_at", UTCDateTime),
    Column("amount", BigInteger),
    Column("store_id", Text),
    Column("points", BigInteger),
    prefixes=["TEMPORARY"],
)
_NEW = Table(
    "import_new",
    _meta,
    Column("purchase_id", BigInteger),
    Column("member_id", BigInteger),
    Column("points", BigInteger),
    prefixes=["TEMPORARY"],
)
_COLUMNS = [c.name for c in _STAGING.columns]


def _write_staging(session: Session, rows: list[Row], target: Target) -> Written:
    """One batch, in bulk: stage, create members, insert the new purchases, post what they
    earn. Raises ImportReferenceError."""
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    _stage(conn, rows, postgres)
    params = {"now": target.now, "client": target.client_id, "currency": target.currency}
    written = Written(members_created=conn.execute(_CREATE_MEMBERS, params).rowcount)
    if postgres:
        conn.execute(_LOCK_MEMBERS)
        written.imported = conn.execute(_INSERT_PURCHASES_PG, params).rowcount
    else:
        new = conn.execute(_INSERT_PURCHASES_SQLITE, params).all()
        if new:
            conn.execute(
                insert(_NEW), [{"purchase_id": i, "member_id": m, "points": p} for i, m, p in new]
            )
        written.imported = len(new)
    written.duplicates = len(rows) - written.imported
    if written.imported:
        written.points_earned = _post_earnings(session, target)
    return written


def _stage(conn: Connection, rows: list[Row], postgres: bool) -> None:
    """The batch into the (emptied) temporary table import_staging; import_new emptied."""
    _STAGING.create(conn, checkfirst=True)
    _NEW.create(conn, checkfirst=True)
    empty = "TRUNCATE" if postgres else "DELETE FROM"
    conn.exec_driver_sql(f"{empty} import_staging")
    conn.exec_driver_sql(f"{empty} import_new")
    if not postgres:
        conn.execute(insert(_STAGING), [dict(zip(_COLUMNS, row, strict=True)) for row in rows])
        return
    raw: Any = conn.connection.driver_connection
    copy_sql = f"COPY import_staging ({', '.join(_COLUMNS)}) FROM STDIN"
    with raw.cursor() as cur, cur.copy(copy_sql) as copy:
        for row in rows:
            copy.write_row(row)


def _post_earnings(session: Session, target: Target) -> int:
    """The earn entries and balances of the purchases in import_new; the points posted.
    Raises ImportReferenceError when a join dropped one (the statements' joins make the
    references; the foreign-key triggers check them too)."""
    conn = session.connection()
    earning_rows, earned = conn.execute(_EARNINGS).one()
    posted, updated = ledger.credit_earnings_from(
        session, _NEW.name, client_id=target.client_id, actor_name=IMPORT_ACTOR, now=target.now
    )
    members = conn.execute(_MEMBERS_OF_NEW).scalar()
    if posted != earning_rows or updated != members:
        raise ImportReferenceError(
            f"posted {posted} of {earning_rows} entries, updated {updated} of {members} "
            "members; the batch is rolled back"
        )
    return int(earned or 0)


_EARNINGS = text("SELECT COUNT(*), COALESCE(SUM(points), 0) FROM import_new WHERE points > 0")
_MEMBERS_OF_NEW = text("SELECT COUNT(DISTINCT member_id) FROM import_new")


def _sql(statement: str) -> Any:
    return text(statement).bindparams(bindparam("now", type_=UTCDateTime()))


# New customers become members in the order the file first names them (ids follow the file, the
# same on every run; a bare DISTINCT would number them in hash order).
_CREATE_MEMBERS = _sql(
    """
    INSERT INTO members (external_ref, marketing_consent, points, held, available_floor,
                         created_at, updated_at)
    SELECT s.customer_ref, false, 0, 0, 0, :now, :now FROM import_staging s
     WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.external_ref = s.customer_ref)
     GROUP BY s.customer_ref
     ORDER BY MIN(s.line)
    ON CONFLICT (external_ref) DO NOTHING
    """
)
# Every member the batch touches, locked in id order (no deadlock with live requests, which
# lock one member each). SQLite: the import holds the write lock (BEGIN IMMEDIATE).
_LOCK_MEMBERS = text(
    """
    SELECT m.id FROM members m
     WHERE m.external_ref IN (SELECT customer_ref FROM import_staging)
     ORDER BY m.id FOR UPDATE
    """
)
_PURCHASES_SELECT = """
    SELECT m.id, :client, s.external_id, s.amount, :currency, s.occurred_at, s.store_id,
           s.points, 0, 0, :now
      FROM import_staging s JOIN members m ON m.external_ref = s.customer_ref
     WHERE true
     ORDER BY s.line
    ON CONFLICT (api_client_id, external_id) DO NOTHING
"""
_PURCHASE_COLUMNS = """
    purchases (member_id, api_client_id, external_id, amount, currency, occurred_at, store_id,
               points_earned, returned_amount, points_reversed, created_at)
"""
# ON CONFLICT probes the unique index row by row (O(log n)); an anti-join would hash every
# purchase of the import client on every batch.
_INSERT_PURCHASES_PG = _sql(
    f"""
    WITH ins AS (
      INSERT INTO {_PURCHASE_COLUMNS} {_PURCHASES_SELECT}
      RETURNING id, member_id, points_earned
    )
    INSERT INTO import_new (purchase_id, member_id, points) SELECT * FROM ins
    """
)
_INSERT_PURCHASES_SQLITE = _sql(
    f"INSERT INTO {_PURCHASE_COLUMNS} {_PURCHASES_SELECT} RETURNING id, member_id, points_earned"
)
