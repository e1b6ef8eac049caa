"""Import of purchase history from CSV, so the metrics mean something on day one.

Columns (a header row names them; order is free, other columns are ignored): `customer_ref` (the
retailer's own customer id: an unknown one creates a member keeping it as `external_ref`),
`external_id`, `occurred_at` (ISO date = 00:00 UTC, or date-time; without an offset it is UTC),
`amount` (decimal in major units, exact: `29.99`; more decimals than the currency has is an
error), and optional `currency` (must be the programme's) and `store_id`.

Rows are read in batches of `batch_rows`. A batch with any bad row is written not at all (every
bad line is reported); a good batch is written in one transaction with bulk statements, never a
statement per row. On PostgreSQL a batch none of whose purchases is there yet (a first import)
goes the direct path: members looked up or created in bulk, locked in id order, then binary COPY
straight into purchases and ledger entries with ids, points and `balance_after` worked out in
Python. Any other batch (a re-run, an overlap, a member renamed under the import), and every batch
on SQLite, goes the staging path: COPY (executemany on SQLite) into a temporary table, then
INSERT … SELECT … ON CONFLICT DO NOTHING and the entries by SQL. Purchases are
recorded under the API client `import`, so `(import, external_id)` is unique: running the same
file again imports nothing twice. Unless `earn` is off, each new purchase earns as a live one
would (`earning.scale`), posted as one `earn` ledger entry with its `balance_after`, and the
members' balances move under a row lock in the same transaction.
"""

from __future__ import annotations

import contextvars
import csv
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg.errors import UniqueViolation
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    insert,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from loyalty.domain import earning, ledger
from loyalty.domain.clients import system_actor
from loyalty.domain.program import get_program
from loyalty.domain.sql import bigint_array
from loyalty.models.types import UTCDateTime, utcnow

REQUIRED = ("customer_ref", "external_id", "occurred_at", "amount")
OPTIONAL = ("currency", "store_id")
IMPORT_ACTOR = "import"  # the API client purchases and ledger entries are recorded under
BATCH_ROWS = 50_000  # rows per transaction: 20k -> 50k made a 1M time-ordered import 6 % faster
MAX_REPORTED_ERRORS = 100
MAX_AMOUNT = 10**12
MAX_CLOCK_SKEW = timedelta(hours=24)
SWITCH_INTERVAL = 0.0001  # seconds; see _Writer
_AMOUNT = re.compile(r"^(\d{1,15})(?:\.(\d+))?$")

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


class HeaderError(ValueError):
    """The file cannot be read as an import at all (no header, a required column missing)."""


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass
class ImportResult:
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    members_created: int = 0
    points_earned: int = 0
    batches: int = 0
    failed_batches: list[tuple[int, int]] = field(default_factory=list)  # (first, last line)
    errors: list[RowError] = field(default_factory=list)  # the first MAX_REPORTED_ERRORS
    error_count: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    row_triggers_skipped: bool = False
    direct_batches: int = 0  # written by the direct path (PostgreSQL, nothing of them there yet)

    @property
    def ok(self) -> bool:
        return self.error_count == 0


Row = tuple[int, str, str, datetime, int, str | None, int]


class RowParser:
    """Checks and converts one CSV row; every rule of the module docstring, nothing written."""

    def __init__(self, program: Any, *, earn: bool, now: datetime) -> None:
        self.currency = program.currency
        self.exponent = program.currency_exponent
        self.scale = 10**self.exponent
        self.rate = (program.points_per_unit, program.rounding)
        self.earn = earn
        self.latest = now + MAX_CLOCK_SKEW

    def amount(self, raw: str) -> int:
        match = _AMOUNT.match(raw.strip())
        if match is None:
            raise ValueError(f"{raw!r} is not a non-negative decimal amount like 29.99")
        whole, fraction = match.group(1), match.group(2) or ""
        if len(fraction) > self.exponent:
            raise ValueError(
                f"{raw!r} has more decimals than {self.currency} has ({self.exponent})"
            )
        value = int(whole) * self.scale + (
            int(fraction.ljust(self.exponent, "0")) if fraction else 0
        )
        if value > MAX_AMOUNT:
            raise ValueError(f"{raw!r} is too large")
        return value

    def occurred_at(self, raw: str) -> datetime:
        raw = raw.strip()
        try:
            if len(raw) == 10:
                at = datetime.combine(date.fromisoformat(raw), time(), tzinfo=UTC)
            else:
                at = datetime.fromisoformat(raw)
                at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        except ValueError:
            raise ValueError(f"{raw!r} is not an ISO date or date-time") from None
        if at > self.latest:
            raise ValueError(f"{raw!r} lies in the future")
        return at

    def parse(self, line: int, values: dict[str, str]) -> tuple[Row | None, list[RowError]]:
        """The row, or None and every error of the row (each field checked)."""
        try:  # the common case, a good row, without collecting anything
            store_id = (values.get("store_id") or "").strip()
            currency = (values.get("currency") or "").strip().upper()
            if currency and currency != self.currency:
                raise ValueError(currency)
            amount = self.amount(values.get("amount") or "")
            points = (
                earning.scale(amount, self.rate[0], self.exponent, self.rate[1]) if self.earn else 0
            )
            return (
                line,
                _text((values.get("customer_ref") or "").strip(), 100),
                _text(values.get("external_id") or "", 255),
                self.occurred_at(values.get("occurred_at") or ""),
                amount,
                _text(store_id, 100) if store_id else None,
                points,
            ), []
        except ValueError:
            return None, self._errors(line, values)

    def _errors(self, line: int, values: dict[str, str]) -> list[RowError]:
        errors: list[RowError] = []

        def check(name: str, convert: Callable[[str], Any]) -> Any:
            try:
                return convert(values.get(name) or "")
            except ValueError as exc:
                errors.append(RowError(line, name, str(exc)))
                return None

        check("customer_ref", lambda v: _text(v.strip(), 100))
        check("external_id", lambda v: _text(v, 255))
        check("occurred_at", self.occurred_at)
        check("amount", self.amount)
        check("store_id", lambda v: _text(v.strip(), 100) if v.strip() else None)
        currency = (values.get("currency") or "").strip().upper()
        if currency and currency != self.currency:
            errors.append(
                RowError(line, "currency", f"{currency} is not the programme's {self.currency}")
            )
        return errors


def _text(value: str, max_len: int) -> str:
    if not value:
        raise ValueError("is empty")
    if len(value) > max_len:
        raise ValueError(f"is longer than {max_len} characters")
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


def read_rows(handle: Iterable[str], result: ImportResult) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) per data row; the header row is line 1. Raises
    HeaderError."""
    reader = csv.reader(handle)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise HeaderError("the file is empty (a header row is required)") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise HeaderError(f"the header lacks {', '.join(missing)} (it has {', '.join(header)})")
    wanted = [(i, name) for i, name in enumerate(header) if name in REQUIRED + OPTIONAL]
    result.ignored_columns = [h for h in header if h not in REQUIRED + OPTIONAL]
    width = len(header)
    for record in reader:
        if not record:
            continue  # a blank line
        if len(record) != width:
            yield reader.line_num, {"__width__": f"{len(record)} fields, the header has {width}"}
            continue
        yield reader.line_num, {name: record[i] for i, name in wanted}


def import_purchases(
    session: Session,
    handle: Iterable[str],
    *,
    earn: bool = True,
    check_only: bool = False,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import a CSV file of purchases (see the module docstring): each good batch is written
    and committed on its own (a failure rolls that batch back and is raised); a batch with a bad
    row is not written. `check_only` reads and checks every row, writing nothing. On PostgreSQL
    a writer thread writes batch N while this one reads and checks batch N + 1 (the database
    works while Python parses). Raises HeaderError."""
    result = ImportResult()
    now = utcnow()
    parser = RowParser(get_program(session), earn=earn, now=now)
    client_id = None
    postgres = session.get_bind().dialect.name == "postgresql"
    if not check_only:
        client_id = system_actor(session, IMPORT_ACTOR, "(import)").client_id
        session.commit()

    members: dict[str, int] = {}  # customer_ref → member id, as committed (direct path)

    def write(rows: list[Row]) -> None:
        assert client_id is not None
        args = {"client_id": client_id, "currency": parser.currency, "now": now}
        try:
            if postgres and _write_batch_direct(session, rows, result, members, **args):
                session.commit()
                result.batches += 1
                result.direct_batches += 1
                return
            session.rollback()
            _write_batch(session, rows, result, **args)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        result.batches += 1

    writer = _Writer(write, threaded=postgres and not check_only)
    batcher = _Batcher(parser, result, writer if not check_only else None)
    try:
        for line, values in read_rows(handle, result):
            batcher.add(line, values)
            if result.rows % batch_rows == 0:
                batcher.flush(line)
                if progress:
                    progress(batch_rows)
        batcher.flush(batcher.last_line)
        if progress:
            progress(result.rows % batch_rows)
    finally:
        writer.close()
    return result


class _Batcher:
    """Collects checked rows into the current batch; a bad row fails its whole batch."""

    def __init__(self, parser: RowParser, result: ImportResult, writer: _Writer | None) -> None:
        self.parser, self.result, self.writer = parser, result, writer
        self.rows: list[Row] = []
        self.failed = False
        self.first_line = self.last_line = 1
        self.seen: dict[str, int] = {}  # external_id → its first line, over the whole file

    def add(self, line: int, values: dict[str, str]) -> None:
        result = self.result
        if not self.rows and not self.failed:
            self.first_line = line
        self.last_line = line
        result.rows += 1
        if "__width__" in values:
            row, errors = None, [RowError(line, "row", values["__width__"])]
        else:
            row, errors = self.parser.parse(line, values)
        if row is not None:
            earlier = self.seen.setdefault(row[2], line)
            if earlier != line:
                row, errors = None, [RowError(line, "external_id", f"repeats line {earlier}")]
        if errors:
            result.error_count += len(errors)
            room = MAX_REPORTED_ERRORS - len(result.errors)
            result.errors.extend(errors[: max(0, room)])
            self.failed = True
        elif not self.failed:
            assert row is not None
            self.rows.append(row)

    def flush(self, last_line: int) -> None:
        if self.failed:
            self.result.failed_batches.append((self.first_line, last_line))
        elif self.rows and self.writer is not None:
            self.writer.submit(self.rows)
        self.rows, self.failed = [], False


class _Writer:
    """Writes batches inline, or on a thread of its own with a queue of two batches ahead. An
    error stops the writing; it is raised to the reader at its next submit or at close."""

    def __init__(self, write: Callable[[list[Row]], None], *, threaded: bool) -> None:
        self.write = write
        self.error: BaseException | None = None
        self.queue: queue.Queue[list[Row] | None] | None = None
        if threaded:
            self.queue = queue.Queue(maxsize=2)
            context = contextvars.copy_context()  # e.g. the write_transaction flag
            self.thread = threading.Thread(target=context.run, args=(self._run,), daemon=True)
            # The reader holds the GIL while it parses; the writer wants it back after every
            # round trip and COPY chunk. At the default 5 ms switch interval those waits were a
            # fifth of the import (34.6 → 28.2 s for 1M rows at 0.1 ms, 2026-11-23).
            self.switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL)
            self.thread.start()

    def submit(self, rows: list[Row]) -> None:
        if self.error is not None:
            raise self.error
        if self.queue is None:
            self.write(rows)
        else:
            self.queue.put(rows)

    def _run(self) -> None:
        assert self.queue is not None
        while (rows := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.write(rows)
                except BaseException as exc:
                    self.error = exc

    def close(self) -> None:
        if self.queue is not None:
            self.queue.put(None)
            self.thread.join()
            self.queue = None
            sys.setswitchinterval(self.switch_interval)
        if self.error is not None:
            raise self.error


def _write_batch(
    session: Session,
    rows: list[Row],
    result: ImportResult,
    *,
    client_id: int,
    currency: str,
    now: datetime,
) -> None:
    """One batch, in bulk: stage, create members, insert purchases, post what they earn."""
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    _STAGING.create(conn, checkfirst=True)
    _NEW.create(conn, checkfirst=True)
    conn.exec_driver_sql(
        "DELETE FROM import_staging" if not postgres else "TRUNCATE import_staging"
    )
    conn.exec_driver_sql("DELETE FROM import_new" if not postgres else "TRUNCATE import_new")
    if postgres:
        result.row_triggers_skipped = _skip_row_triggers(conn)
        raw: Any = conn.connection.driver_connection  # psycopg's own connection
        copy_sql = f"COPY import_staging ({', '.join(_COLUMNS)}) FROM STDIN"
        with raw.cursor() as cur, cur.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
    else:
        conn.execute(insert(_STAGING), [dict(zip(_COLUMNS, row, strict=True)) for row in rows])
    params = {"now": now, "client": client_id, "currency": currency, "no": False}
    created = conn.execute(_CREATE_MEMBERS, params)
    result.members_created += created.rowcount
    if postgres:
        conn.execute(_LOCK_MEMBERS)
        inserted = conn.execute(_INSERT_PURCHASES_PG, params).rowcount
    else:
        new = conn.execute(_INSERT_PURCHASES_SQLITE, params).all()
        if new:
            conn.execute(
                insert(_NEW), [{"purchase_id": i, "member_id": m, "points": p} for i, m, p in new]
            )
        inserted = len(new)
    result.imported += inserted
    result.duplicates += len(rows) - inserted
    if inserted:
        earning_rows, earned = conn.execute(_EARNINGS).one()
        posted, updated = ledger.credit_earnings_from(
            session, _NEW.name, client_id=client_id, actor_name=IMPORT_ACTOR, now=now
        )
        members = conn.execute(_EARNING_MEMBERS).scalar()
        # The references are made by the statements' joins (members locked, purchases just
        # returned); were one missing, a join would have dropped its row: count them.
        if posted != earning_rows or updated != members:
            raise ImportReferenceError(
                f"posted {posted} of {earning_rows} entries, updated {updated} of {members} "
                "members; the batch is rolled back"
            )
        result.points_earned += int(earned or 0)


class _Fallback(Exception):
    """The direct path cannot write this batch as it stands; the staging path will."""


def _write_batch_direct(
    session: Session,
    rows: list[Row],
    result: ImportResult,
    members: dict[str, int],
    *,
    client_id: int,
    currency: str,
    now: datetime,
) -> bool:
    """PostgreSQL, a batch of purchases none of which is there yet (the usual case: a first
    import): binary COPY straight into purchases and ledger_entries, the references and
    balances worked out here, where the parsing core has time to spare, not by joins in the
    database. Returns False, having written nothing the caller keeps (it rolls back), when the
    batch needs the staging path: a purchase already there (a re-run), or a member whose
    `external_ref` changed under the import.

    `members` maps customer_ref → id for members known to exist (committed); the batch's new
    ones join it only once the batch is written."""
    conn = session.connection()
    raw: Any = conn.connection.driver_connection
    try:
        with raw.cursor() as cur:
            if _any_there(cur, client_id, rows):
                return False
            result_triggers = _skip_row_triggers(conn)
            refs = list(dict.fromkeys(row[1] for row in rows))  # first appearance order
            known, created = _member_ids(cur, refs, members, now)
            ids = sorted(set(known.values()))
            cur.execute(
                "SELECT id, external_ref, points FROM members WHERE id = ANY(%s::bigint[]) "
                "ORDER BY id FOR UPDATE",
                (bigint_array(ids),),
            )
            balance: dict[int, int] = {}
            for member_id, ref, points in cur:
                if known.get(ref) != member_id:
                    raise _Fallback(ref)
                balance[member_id] = points
            if len(balance) != len(ids):
                raise _Fallback("a member is gone")
            cur.execute(
                "SELECT nextval('purchases_id_seq') FROM generate_series(1, %s)", (len(rows),)
            )
            purchase_ids = [r[0] for r in cur]
            earnings: list[tuple[int, int, int]] = []  # member, purchase, points
            # Ids follow the file; the rows go in member order (file order within a member), so
            # that a file in time order, whose batches touch most members, fills the
            # (member_id, occurred_at) index page by page instead of at random.
            member_of = [known[row[1]] for row in rows]
            with cur.copy(_COPY_PURCHASES) as copy:
                copy.set_types(_PURCHASE_TYPES)
                for i in sorted(range(len(rows)), key=member_of.__getitem__):
                    _, _, external_id, at, amount, store, points = rows[i]
                    purchase_id, member_id = purchase_ids[i], member_of[i]
                    copy.write_row(
                        (
                            purchase_id,
                            member_id,
                            client_id,
                            external_id,
                            amount,
                            currency,
                            at,
                            store,
                            points,
                            0,
                            0,
                            now,
                        )
                    )
                    if points > 0:
                        earnings.append((member_id, purchase_id, points))
            earned, updated = ledger.copy_earnings(
                cur, earnings, balance, client_id=client_id, actor_name=IMPORT_ACTOR, now=now
            )
            members_earning = len({member_id for member_id, _, _ in earnings})
            if updated != members_earning:
                raise ImportReferenceError(
                    f"updated {updated} of {members_earning} members; rolled back"
                )
    except (_Fallback, UniqueViolation):  # UniqueViolation: a purchase there after all
        return False
    result.row_triggers_skipped = result_triggers
    result.imported += len(rows)
    result.members_created += len(created)
    result.points_earned += earned
    members.update(known)
    return True


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
    then created in the order given (ids follow the file)."""
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


def _skip_row_triggers(conn: Any) -> bool:
    """PostgreSQL: skip the per-row foreign-key triggers for this transaction where the role may
    (a superuser, or `GRANT SET ON PARAMETER session_replication_role`), as pg_restore
    --disable-triggers does; the batch's references are then checked by counting what its
    joins matched, before commit. The append-only triggers guard UPDATE and DELETE, which an import
    never does. Returns whether they are skipped."""
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
    except DBAPIError:
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


class ImportReferenceError(RuntimeError):
    """A batch would have written a row that points nowhere (never expected: a bug)."""


_EARNINGS = text("SELECT COUNT(*), COALESCE(SUM(points), 0) FROM import_new WHERE points > 0")
_EARNING_MEMBERS = text("SELECT COUNT(DISTINCT member_id) FROM import_new WHERE points > 0")


def _sql(statement: str) -> Any:
    return text(statement).bindparams(bindparam("now", type_=UTCDateTime()))


# New customers become members in the order the file first names them (ids follow the file, the
# same on every run; a bare DISTINCT would number them in hash order).
_CREATE_MEMBERS = _sql(
    """
    INSERT INTO members (external_ref, marketing_consent, points, held, available_floor,
                         created_at, updated_at)
    SELECT s.customer_ref, :no, 0, 0, 0, :now, :now FROM import_staging s
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
