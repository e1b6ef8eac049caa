"""The points ledger: the ONLY code that writes ledger entries or members' points and held.

Every change locks the member row first (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite the write
transaction's lock), appends one entry with `balance_after`, and updates the cached balance in the
same transaction. The database backs this up: entries cannot be updated or deleted (trigger), and
`points - held >= available_floor` (CHECK), where spends set the floor to 0 and only returns,
earnings and releases may leave it below (a return's debt).

Lots: every credit (a purchase's earn and bonus together, a positive adjustment, a reward's
points given back) makes a `point_lots` row with its expiry (`expires_at`, the end of the day
`points_expire_after_days` after the credit, midnight in the programme's time zone; null =
never) and, for earnings, the end of its pending time (`pending_until`, `pending_days`). What a
credit first pays of a debt is not in its lot. Every debit consumes `remaining` from the
member's lots: a return's reversal from that purchase's own lots first, then spendable lots
soonest-expiring first (never-expiring last, then oldest), then pending ones. So the remaining
points of a member's lots add up to their balance (0 when in debt), and those of their pending
lots (pending_until not null) to `members.pending`; `available = points - held - pending`. A
reservation (hold) takes no lot: held points stay in their lots until the reservation is
redeemed (a debit) or released.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from itertools import accumulate
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import Table, bindparam, case, func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from loyalty.domain import tally
from loyalty.domain.cards import normalise_card_number
from loyalty.domain.context import Actor
from loyalty.domain.members import check_card_use, require_member_ref
from loyalty.domain.program import programme_zone
from loyalty.domain.sql import Fast, bigint_array
from loyalty.errors import (
    InsufficientPoints,
    NotFound,
)
from loyalty.models import ENTRY_KINDS, Card, LedgerEntry, Member, PointLot, Program
from loyalty.models.types import UTCDateTime, utcnow


def lock_member(session: Session, member_id: int) -> Member:
    """The member row, locked for the rest of the transaction. Raises NotFound."""
    member = session.get(Member, member_id, with_for_update=True, populate_existing=True)
    if member is None:
        raise NotFound(f"No member {member_id}.", field="member_id")
    return member


def lock_member_for(
    session: Session, *, card_number: str | None = None, member_id: int | None = None
) -> Member:
    """The member a request body names (card_number and/or member_id), locked, in one query.

    Raises ValidationFailed (neither given), InvalidCardNumber, NotFound, CardBlocked,
    MemberMismatch.
    """
    require_member_ref(card_number, member_id)
    if card_number is None:
        assert member_id is not None
        return lock_member(session, member_id)
    number = normalise_card_number(card_number)
    row = session.execute(
        select(Member, Card.status)
        .join(Card, Card.member_id == Member.id)
        .where(Card.number == number)
        .with_for_update(of=Member)
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        raise NotFound(f"No card {number}.", field="card_number")
    member, status = row
    check_card_use(number, status, member.id, member_id)
    return member


def post(
    session: Session,
    member: Member,
    kind: str,
    points: int,
    *,
    reason: str,
    actor: Actor,
    purchase_id: int | None = None,
    return_id: int | None = None,
    redemption_id: int | None = None,
    note: str | None = None,
    allow_debt: bool = False,
    terms: LotTerms | None = None,
    now: datetime | None = None,
) -> LedgerEntry:
    """Append an entry and update the member's cached balance. `member` must be locked.

    A negative change to a spending kind needs enough `available` points (raises
    InsufficientPoints); `allow_debt` (returns) lets `available` go below zero. A positive
    change makes a lot (never pending; its expiry by `terms`, the programme's by default); a
    negative one consumes lots (a `reverse` with a purchase_id from that purchase's first).
    """
    if kind not in ENTRY_KINDS:
        raise ValueError(kind)
    if points == 0:
        raise ValueError("a ledger entry moves at least one point")
    available = member.points - member.held - member.pending
    if points < 0 and not allow_debt and available + points < 0:
        raise InsufficientPoints(f"{-points} points needed, {available} available.", field="points")
    if points < 0:
        _consume(session, member, -points, purchase_id if kind == "reverse" else None)
    member.points += points
    if points < 0 and not allow_debt:
        member.available_floor = 0
    else:
        member.available_floor = min(0, member.points - member.held)
    entry = LedgerEntry(
        member_id=member.id,
        kind=kind,
        points=points,
        balance_after=member.points,
        reason=reason,
        note=note,
        purchase_id=purchase_id,
        return_id=return_id,
        redemption_id=redemption_id,
        api_client_id=actor.client_id,
        actor=actor.name,
    )
    session.add(entry)
    tally.note_entry(session, kind, points)
    if points > 0:
        _add_lot(session, member, entry, terms or lot_terms(session), now or utcnow())
    return entry


def _add_lot(
    session: Session, member: Member, entry: LedgerEntry, terms: LotTerms, now: datetime
) -> None:
    """post()'s lot of a positive entry (never pending), after the balance took it."""
    session.add(
        PointLot(
            member_id=member.id,
            entry=entry,
            purchase_id=entry.purchase_id,
            points=entry.points,
            remaining=_lot_remaining(entry.points, member.points),
            expires_at=terms.expires_at(now),
            created_at=now,
        )
    )


def _lot_remaining(points: int, balance_after: int) -> int:
    """What is left in a credit's lot once it paid the debt there was: the whole credit, or
    the balance after it when that is less (0 when the balance is still in debt)."""
    return max(0, min(points, balance_after))


def _consume(session: Session, member: Member, points: int, purchase_id: int | None) -> None:
    """Take `points` out of the member's lots, in the order of the module docstring; a
    pending lot's points leave `pending` too. Whatever the lots do not cover is a debt."""
    order = [
        case((PointLot.pending_until.is_(None), 0), else_=1),
        case((PointLot.expires_at.is_(None), 1), else_=0),
        PointLot.expires_at,
        PointLot.id,
    ]
    if purchase_id is not None:
        order.insert(0, case((PointLot.purchase_id == purchase_id, 0), else_=1))
    lots = session.scalars(
        select(PointLot)
        .where(PointLot.member_id == member.id, PointLot.remaining > 0)
        .order_by(*order)
    )
    for lot in lots:
        take = min(points, lot.remaining)
        lot.remaining -= take
        if lot.pending_until is not None:
            member.pending -= take
        points -= take
        if points == 0:
            break


# holds: reserved points (redemptions) ---------------------------------------------------------
def check_spendable(available: int, points: int, *, field: str) -> None:
    """Spending `points` out of `available` never leaves a debt. Raises InsufficientPoints."""
    if available - points < 0:
        raise InsufficientPoints(f"{points} points needed, {available} available.", field=field)


def hold(member: Member, points: int) -> None:
    """Reserve `points` (> 0) of the member's available points. `member` must be locked.

    Raises InsufficientPoints. No ledger entry: the points are still the member's (pending).
    """
    if points <= 0:
        raise ValueError("a hold reserves at least one point")
    check_spendable(member.points - member.held - member.pending, points, field="reward_id")
    member.held += points
    member.available_floor = 0


def release(member: Member, points: int) -> None:
    """Give reserved points back to `available` (cancel, expiry). `member` must be locked."""
    if not 0 < points <= member.held:
        raise ValueError("release more than is held")
    member.held -= points
    member.available_floor = min(0, member.points - member.held)


def settle(
    session: Session, member: Member, points: int, *, redemption_id: int, actor: Actor
) -> LedgerEntry:
    """Reserved points leave the account: held -= points and a `redeem` entry of −points.

    `available` does not change (the hold had already taken the points out of it).
    """
    if not 0 < points <= member.held:
        raise ValueError("settle more than is held")
    member.held -= points
    return post(
        session,
        member,
        "redeem",
        -points,
        reason="reward_redeemed",
        actor=actor,
        redemption_id=redemption_id,
        allow_debt=True,
    )


# lot terms: when a lot lapses, until when it is pending ---------------------------------------
def end_of_day(at: datetime, days: int | None, zone: tzinfo) -> datetime | None:
    """The end (midnight, in `zone`) of the day `days` days after the day of `at`, in UTC; None
    for None. Points earned at 23:30 on 1 March with 1 day lapse at 00:00 on 3 March."""
    if days is None:
        return None
    day = at.astimezone(zone).date() + timedelta(days=days + 1)
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class LotTerms:
    """The programme's `points_expire_after_days` and `pending_days` in its time zone."""

    expire_after_days: int | None = None
    pending_days: int | None = None
    zone: tzinfo = UTC

    def expires_at(self, earned_at: datetime) -> datetime | None:
        return end_of_day(earned_at, self.expire_after_days, self.zone)

    def pending_until(self, earned_at: datetime) -> datetime | None:
        return end_of_day(earned_at, self.pending_days, self.zone)

    def pending_from(self, now: datetime) -> datetime | None:
        """pending_until of a lot credited now, or None when it is not pending (any more)."""
        until = self.pending_until(now)
        return until if until is not None and until > now else None


def terms_of(program: Any) -> LotTerms:
    """The lot terms of a programme row (or of any object with its columns)."""
    return LotTerms(
        program.points_expire_after_days,
        getattr(program, "pending_days", None),
        programme_zone(program),
    )


def lot_terms(session: Session) -> LotTerms:
    """The programme's lot terms (the defaults when there is no programme row yet)."""
    program = session.get(Program, 1)
    return LotTerms() if program is None else terms_of(program)


# earning: crediting points in two statements ---------------------------------------------
# The UPDATE takes the row lock itself and returns the new balance; `points` on the right-hand
# side is the old value on PostgreSQL and SQLite alike.
def _add_points(delta: str) -> str:
    """SQL SET clause adding `delta` (an SQL expression) to a member's points, with post()'s
    floor rule: an addition that still leaves `available` below zero keeps that as the floor (a
    return's debt not yet paid), otherwise the floor goes back to 0. Adding 0 changes nothing
    (a bulk UPDATE that also counts the spend of members who earned nothing)."""
    return f"""points = points + {delta},
           available_floor = CASE WHEN {delta} = 0 THEN available_floor
                                  WHEN points + {delta} - held < 0
                                  THEN points + {delta} - held ELSE 0 END"""


_CREDIT = Fast(
    text(
        f"""
        UPDATE members
           SET {_add_points(":delta")},
               pending = pending + CASE WHEN points >= 0 THEN :pending
                                        WHEN points + :pending > 0 THEN points + :pending
                                        ELSE 0 END,
               gross_spend = gross_spend + :spend,
               updated_at = :now
         WHERE id = :member_id
        RETURNING points, held, pending, gross_spend
        """
    ).bindparams(bindparam("now", type_=UTCDateTime()))
)
# A purchase that earns nothing still counts its amount (members.gross_spend).
_ADD_SPEND = Fast(
    text(
        """
        UPDATE members SET gross_spend = gross_spend + :spend WHERE id = :member_id
        RETURNING points, held, pending, gross_spend
        """
    )
)
_EARN_COLUMNS = (
    "member_id",
    "kind",
    "points",
    "balance_after",
    "reason",
    "purchase_id",
    "api_client_id",
    "actor",
    "created_at",
)
#: an award's own columns (the others are the same for all of a credit's entries and lots)
_ENTRY_OWN = ("kind", "points", "balance_after", "reason")
_ENTRIES = cast(Table, LedgerEntry.__table__)
_LOT_COLUMNS = (
    "member_id",
    "entry_id",
    "purchase_id",
    "points",
    "remaining",
    "expires_at",
    "pending_until",
    "created_at",
)
_LOTS = cast(Table, PointLot.__table__)
#: credit()'s lot
_INSERT_LOT = Fast(insert(_LOTS).values({c: bindparam(c) for c in _LOT_COLUMNS}))


def _rows(columns: tuple[str, ...], own: tuple[str, ...], count: int) -> list[dict[str, Any]]:
    """The VALUES of a `count`-row INSERT: row i binds its own columns as `<column>_<i>`, the
    others to one shared parameter each."""
    return [{c: bindparam(f"{c}_{i}" if c in own else c) for c in columns} for i in range(count)]


#: credit()'s multi-row INSERTs of entries, one prepared statement per number of awards
_INSERTS: dict[int, Fast] = {}


def _inserts(count: int) -> Fast:
    """The INSERT of `count` entries (RETURNING id, balance_after)."""
    if count not in _INSERTS:
        entries = insert(_ENTRIES).values(_rows(_EARN_COLUMNS, _ENTRY_OWN, count))
        _INSERTS[count] = Fast(entries.returning(_ENTRIES.c.id, _ENTRIES.c.balance_after))
    return _INSERTS[count]


class Earned(Protocol):
    """Points to credit: one entry (and lot) each (`earning.Award` is one)."""

    @property
    def kind(self) -> str: ...  # earn | bonus

    @property
    def points(self) -> int: ...

    @property
    def reason(self) -> str: ...


class _Award(NamedTuple):
    kind: str
    points: int
    reason: str


class Credited(NamedTuple):
    """A member's balance after a credit, and their gross spend (members.gross_spend)."""

    points: int
    held: int
    pending: int
    gross_spend: int = 0

    @property
    def balance(self) -> dict[str, int]:
        return balance_of(self.points, self.held, self.pending)


def balance_of(points: int, held: int, pending: int = 0) -> dict[str, int]:
    """The `balance` object of the API: available = points - held - pending."""
    return {
        "points": points,
        "held": held,
        "pending": pending,
        "available": points - held - pending,
    }


def _expire_cached(session: Session, member_id: int) -> None:
    """Keep an ORM copy of the member in this session truthful after a Core write."""
    cached = session.identity_map.get(identity_key(Member, member_id))
    if cached is not None:
        session.expire(cached)


def credit(
    session: Session,
    member_id: int,
    kind: str,
    points: int,
    *,
    reason: str,
    actor: Actor,
    purchase_id: int | None = None,
    now: datetime,
    terms: LotTerms | None = None,
) -> Credited:
    """credit_all() of one award."""
    return credit_all(
        session,
        member_id,
        [_Award(kind, points, reason)],
        actor=actor,
        purchase_id=purchase_id,
        now=now,
        terms=terms,
    )


def credit_all(
    session: Session,
    member_id: int,
    awards: Sequence[Earned],
    *,
    actor: Actor,
    purchase_id: int | None = None,
    now: datetime,
    terms: LotTerms | None = None,
    spend: int = 0,
) -> Credited:
    """Add the awards' points (each > 0), one entry per award in their order and one lot for
    them all, without loading the member: the balance after them. `terms` (the programme's by
    default, one query more) set the lot's expiry and pending time, counted from `now`.
    `spend`: the purchase's amount, added to the member's gross spend in the same UPDATE.

    For earning (no check before the write, so no SELECT … FOR UPDATE): three statements. The
    UPDATE adds the total, locks the row and gives the balance each entry's `balance_after`
    follows from; one INSERT makes the entries, one the lot, which (the awards sharing their
    terms) holds what a lot per award would together and names the first entry. Raises NotFound.
    """
    if not awards or any(a.points <= 0 or a.kind not in ("earn", "bonus") for a in awards):
        raise ValueError("credit() adds earned points; use post() for anything else")
    terms = terms or lot_terms(session)
    pending_until = terms.pending_from(now)
    total = sum(a.points for a in awards)
    conn = session.connection()
    _expire_cached(session, member_id)
    row = _CREDIT.first(
        conn,
        {
            "delta": total,
            "pending": total if pending_until else 0,
            "spend": spend,
            "now": now,
            "member_id": member_id,
        },
    )
    if row is None:
        raise NotFound(f"No member {member_id}.", field="member_id")
    after = Credited(int(row[0]), int(row[1]), int(row[2]), int(row[3]))
    shared = {"member_id": member_id, "purchase_id": purchase_id, "created_at": now}
    balances = list(accumulate((a.points for a in awards), initial=after.points - total))[1:]
    who = {"api_client_id": actor.client_id, "actor": actor.name}
    ids = _insert_entries(conn, _inserts(len(awards)), awards, balances, {**shared, **who})
    for award in awards:
        tally.note_entry(session, award.kind, award.points)
    _INSERT_LOT.run(
        conn,
        {
            **shared,
            "entry_id": ids[balances[0]],
            "points": total,
            "remaining": _lot_remaining(total, after.points),
            "expires_at": terms.expires_at(now),
            "pending_until": pending_until,
        },
    )
    return after


def add_spend(session: Session, member_id: int, spend: int) -> Credited:
    """A purchase that earns no points: its amount added to the member's gross spend, under
    the member's row lock as credit_all() takes it; the balance after (unchanged).
    Raises NotFound."""
    _expire_cached(session, member_id)
    row = _ADD_SPEND.first(session.connection(), {"spend": spend, "member_id": member_id})
    if row is None:
        raise NotFound(f"No member {member_id}.", field="member_id")
    return Credited(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def _insert_entries(
    conn: Connection,
    statement: Fast,
    awards: Sequence[Earned],
    balances: list[int],
    shared: dict[str, Any],
) -> dict[int, int]:
    """credit_all()'s entries: their ids by balance_after (which rises from one to the next,
    so it tells them apart whatever order RETURNING gives)."""
    params = dict(shared)
    for i, (award, balance) in enumerate(zip(awards, balances, strict=True)):
        params |= {
            f"kind_{i}": award.kind,
            f"points_{i}": award.points,
            f"balance_after_{i}": balance,
            f"reason_{i}": award.reason,
        }
    return {int(after): int(entry_id) for entry_id, after in statement.all(conn, params)}


# bulk earning (imports) -------------------------------------------------------------------------
# Many earn entries at once, by the same rules as credit(): the callers hold the members' row locks
# (locked in id order), and each entry's balance_after is the member's balance before the batch
# plus the running sum of its entries, in purchase order.
_ENTRY_COLUMNS = (
    "member_id, kind, points, balance_after, reason, purchase_id, api_client_id, actor, created_at"
)
_ENTRY_TYPES = ["int8", "text", "int8", "int8", "text", "int8", "int8", "text", "timestamptz"]


def credit_earnings_from(
    session: Session, source: str, *, client_id: int, actor_name: str, now: datetime
) -> tuple[int, int]:
    """One `earn` entry (and lot) per row of the table `source` (purchase_id, member_id, points)
    that earns, and the members' balances and gross spend (every row's purchase counts): (entries
    posted, members updated: every member of `source`). The members must be locked. `source`
    is a table name of the caller's, never user input."""
    conn = session.connection()
    params = {"client": client_id, "actor": actor_name, "now": now}
    terms = lot_terms(session)
    posted = conn.execute(
        text(
            f"""
            INSERT INTO ledger_entries ({_ENTRY_COLUMNS})
            SELECT n.member_id, 'earn', n.points,
                   m.points + SUM(n.points) OVER (PARTITION BY n.member_id
                                                  ORDER BY n.purchase_id
                                                  ROWS UNBOUNDED PRECEDING),
                   'purchase', n.purchase_id, :client, :actor, :now
              FROM {source} n JOIN members m ON m.id = n.member_id
             WHERE n.points > 0
             ORDER BY n.member_id, n.purchase_id
            """
        ).bindparams(bindparam("now", type_=UTCDateTime())),
        params,
    ).rowcount
    updated = conn.execute(
        text(
            f"""
            UPDATE members SET {_add_points("t.earned")}, gross_spend = gross_spend + t.spend,
                   updated_at = :now
              FROM (SELECT n.member_id, SUM(CASE WHEN n.points > 0 THEN n.points ELSE 0 END)
                           AS earned, SUM(p.amount) AS spend
                      FROM {source} n JOIN purchases p ON p.id = n.purchase_id
                     GROUP BY n.member_id) t
             WHERE members.id = t.member_id
            """
        ).bindparams(bindparam("now", type_=UTCDateTime())),
        params,
    ).rowcount
    _lots_of_earnings(session, f"SELECT purchase_id FROM {source}", {}, terms, now)
    return posted, updated


_LOTS_OF_EARNINGS = """
    INSERT INTO point_lots (member_id, entry_id, purchase_id, points, remaining, expires_at,
                            pending_until, created_at)
    SELECT e.member_id, e.id, e.purchase_id, e.points,
           CASE WHEN e.balance_after <= 0 THEN 0
                WHEN e.balance_after < e.points THEN e.balance_after ELSE e.points END,
           :expires_at, :pending_until, :now
      FROM ledger_entries e
     WHERE e.kind = 'earn' AND e.purchase_id IN ({purchases})
"""
_PENDING_OF_LOTS = """
    UPDATE members SET pending = pending + t.total
      FROM (SELECT member_id, SUM(remaining) AS total FROM point_lots
             WHERE purchase_id IN ({purchases}) GROUP BY member_id) t
     WHERE members.id = t.member_id
"""


def _lots_of_earnings(
    session: Session, purchases: str, params: dict[str, Any], terms: LotTerms, now: datetime
) -> None:
    """The lots of the bulk-posted `earn` entries of the purchases the SQL `purchases` selects,
    and the members' pending points when the programme has a pending time."""
    conn = session.connection()
    values = {
        **params,
        "expires_at": terms.expires_at(now),
        "pending_until": terms.pending_from(now),
        "now": now,
    }
    types = [bindparam(k, type_=UTCDateTime()) for k in ("expires_at", "pending_until", "now")]
    lots = text(_LOTS_OF_EARNINGS.format(purchases=purchases)).bindparams(*types)
    conn.execute(lots, values)
    if values["pending_until"] is not None:
        conn.execute(text(_PENDING_OF_LOTS.format(purchases=purchases)), params)


def copy_earnings(
    cursor: Any,
    earnings: list[tuple[int, int, int]],
    balances: dict[int, int],
    *,
    spend: dict[int, int],
    client_id: int,
    actor_name: str,
    now: datetime,
) -> tuple[int, int]:
    """PostgreSQL, through a psycopg cursor of the session's connection: one `earn` entry per
    (member_id, purchase_id, points) by binary COPY, and the members' balances and gross spend
    (`spend`: member → the amounts of their purchases in the batch, every member of it).
    `balances` holds each member's points as read under the lock. Returns (points earned,
    members updated: every member of `spend`)."""
    running = dict(balances)
    earned: dict[int, int] = {}
    lots = _copy_entries(cursor, sorted(earnings), running, earned, (client_id, actor_name, now))
    ids = sorted(spend)
    cursor.execute(
        f"""
        UPDATE members SET {_add_points("t.earned")}, gross_spend = gross_spend + t.spend,
               updated_at = %s
          FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS t(id, earned, spend)
         WHERE members.id = t.id
        """,
        (
            now,
            bigint_array(ids),
            bigint_array(earned.get(i, 0) for i in ids),
            bigint_array(spend[i] for i in ids),
        ),
    )
    updated = cursor.rowcount
    if earned:
        _copy_lots(cursor, lots, now)
    return sum(earned.values()), updated


def _copy_entries(
    cursor: Any,
    rows: list[tuple[int, int, int]],
    running: dict[int, int],
    earned: dict[int, int],
    who: tuple[int, str, datetime],
) -> list[tuple[int, int, int, int, int]]:
    """copy_earnings' entries by binary COPY, their ids drawn first (so that their lots go in by
    COPY too, not by a join back to them); `running` and `earned` kept per member. Returns the
    lots: (member_id, entry_id, purchase_id, points, remaining)."""
    client_id, actor_name, now = who
    cursor.execute(
        "SELECT nextval('ledger_entries_id_seq') FROM generate_series(1, %s)", (len(rows),)
    )
    entry_ids = [r[0] for r in cursor]
    lots: list[tuple[int, int, int, int, int]] = []
    columns = f"id, {_ENTRY_COLUMNS}"
    with cursor.copy(f"COPY ledger_entries ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", *_ENTRY_TYPES])
        for entry_id, (member_id, purchase_id, points) in zip(entry_ids, rows, strict=True):
            running[member_id] += points
            earned[member_id] = earned.get(member_id, 0) + points
            balance = running[member_id]
            entry = (member_id, "earn", points, balance, "purchase", purchase_id, client_id)
            copy.write_row((entry_id, *entry, actor_name, now))
            remaining = _lot_remaining(points, balance)
            lots.append((member_id, entry_id, purchase_id, points, remaining))
    return lots


def _copy_lots(cursor: Any, lots: list[tuple[int, int, int, int, int]], now: datetime) -> None:
    """copy_earnings' lots, one per entry (member_id, entry_id, purchase_id, points, remaining:
    what _LOTS_OF_EARNINGS makes from the entries), by binary COPY through the psycopg cursor;
    and the members' pending points when the programme has a pending time."""
    cursor.execute("SELECT points_expire_after_days, pending_days, timezone FROM program")
    row = cursor.fetchone()
    terms = LotTerms() if row is None else terms_of(_ProgramTerms(*row))
    expires_at, pending_until = terms.expires_at(now), terms.pending_from(now)
    with cursor.copy(
        f"COPY point_lots ({', '.join(_LOT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    ) as c:
        c.set_types(
            ["int8", "int8", "int8", "int8", "int8", "timestamptz", "timestamptz", "timestamptz"]
        )
        for member_id, entry_id, purchase_id, points, remaining in lots:
            c.write_row(
                (
                    member_id,
                    entry_id,
                    purchase_id,
                    points,
                    remaining,
                    expires_at,
                    pending_until,
                    now,
                )
            )
    if pending_until is not None:
        ids = bigint_array(purchase_id for _, _, purchase_id, _, _ in lots)
        purchases = "SELECT unnest(%(ids)s::bigint[])"
        cursor.execute(_PENDING_OF_LOTS.format(purchases=purchases), {"ids": ids})


class _ProgramTerms(NamedTuple):
    points_expire_after_days: int | None
    pending_days: int | None
    timezone: str


# verification ---------------------------------------------------------------------------------
@dataclass
class Verification:
    members: int
    entries: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


#: verify()'s checks: each query lists what breaks the rule it is named after
_CHECKS = {
    "gross spend != sum of purchases": """
        SELECT m.id, m.gross_spend, COALESCE(s.total, 0) FROM members m
        LEFT JOIN (SELECT member_id, SUM(amount) AS total FROM purchases
                   GROUP BY member_id) s ON s.member_id = m.id
        WHERE m.gross_spend <> COALESCE(s.total, 0)""",
    "cached balance != sum of entries": """
        SELECT m.id, m.points, COALESCE(s.total, 0) FROM members m
        LEFT JOIN (SELECT member_id, SUM(points) AS total FROM ledger_entries
                   GROUP BY member_id) s ON s.member_id = m.id
        WHERE m.points <> COALESCE(s.total, 0)""",
    "balance_after breaks the chain": """
        SELECT id, member_id, balance_after, running FROM (
          SELECT id, member_id, balance_after,
                 SUM(points) OVER (PARTITION BY member_id ORDER BY id) AS running
          FROM ledger_entries) t
        WHERE balance_after <> running""",
    "purchase earned more than once": """
        SELECT purchase_id, COUNT(*) FROM ledger_entries
        WHERE kind = 'earn' AND purchase_id IS NOT NULL
        GROUP BY purchase_id HAVING COUNT(*) > 1""",
    "purchase points_earned != its earn/bonus entries": """
        SELECT p.id, p.points_earned, COALESCE(s.total, 0) FROM purchases p
        LEFT JOIN (SELECT purchase_id, SUM(points) AS total FROM ledger_entries
                   WHERE kind IN ('earn', 'bonus') AND return_id IS NULL
                   GROUP BY purchase_id) s ON s.purchase_id = p.id
        WHERE p.points_earned <> COALESCE(s.total, 0)""",
    "purchase points_reversed != its reverse entries": """
        SELECT p.id, p.points_reversed, COALESCE(s.total, 0) FROM purchases p
        LEFT JOIN (SELECT r.purchase_id, -SUM(e.points) AS total FROM ledger_entries e
                   JOIN returns r ON r.id = e.return_id
                   WHERE e.kind = 'reverse' AND e.redemption_id IS NULL
                   GROUP BY r.purchase_id) s ON s.purchase_id = p.id
        WHERE p.points_reversed <> COALESCE(s.total, 0)""",
    "held != points of open reservations": """
        SELECT m.id, m.held, COALESCE(r.total, 0) FROM members m
        LEFT JOIN (SELECT member_id, SUM(points) AS total FROM redemptions
                   WHERE status = 'reserved' GROUP BY member_id) r ON r.member_id = m.id
        WHERE m.held <> COALESCE(r.total, 0)""",
    "held < 0 or available below floor": """
        SELECT id, points, held, available_floor FROM members
        WHERE held < 0 OR points - held < available_floor""",
    "remaining lots != balance": """
        SELECT m.id, m.points, COALESCE(l.total, 0) FROM members m
        LEFT JOIN (SELECT member_id, SUM(remaining) AS total FROM point_lots
                   GROUP BY member_id) l ON l.member_id = m.id
        WHERE COALESCE(l.total, 0) <> CASE WHEN m.points > 0 THEN m.points ELSE 0 END""",
    "pending != remaining pending lots": """
        SELECT m.id, m.pending, COALESCE(l.total, 0) FROM members m
        LEFT JOIN (SELECT member_id, SUM(remaining) AS total FROM point_lots
                   WHERE pending_until IS NOT NULL GROUP BY member_id) l
               ON l.member_id = m.id
        WHERE m.pending <> COALESCE(l.total, 0)""",
}


def verify(session: Session, limit: int = 50) -> Verification:
    """Check the books in SQL (fast on millions of entries):

    1. every member's cached `points` equals the sum of their entries;
    2. every entry's `balance_after` equals the running sum of the member's entries up to it;
    3. no purchase earned twice (one `earn` entry at most);
    4. each purchase's `points_earned` equals its earn + bonus entries, and `points_reversed`
       the reverse entries of its returns;
    5. `held` equals the points of the member's open reservations;
    6. `held` ≥ 0 and `available` ≥ the member's floor;
    7. the remaining points of a member's lots (pending or not) add up to their balance (0 when
       it is in debt), and those of their pending lots to their `pending`;
    8. every member's `gross_spend` equals the amounts of their purchases (the bound the
       purchase path's tier check trusts).
    """
    problems: list[str] = []
    members = session.scalar(select(func.count()).select_from(Member)) or 0
    entries = session.scalar(select(func.count()).select_from(LedgerEntry)) or 0
    for name, sql in _CHECKS.items():
        rows = session.execute(text(sql + f" LIMIT {int(limit)}")).all()
        problems.extend(f"{name}: {tuple(row)}" for row in rows)
    return Verification(members=members, entries=entries, problems=problems)


# pending points becoming available, lots expiring (the nightly job) -----------------------------
# Set-based, for a range of member ids at a time (the job's batches): the members are locked
# first, in id order (FOR UPDATE on PostgreSQL; SQLite's write lock), as every writer of points
# locks them.
def _lock_range(session: Session, lo: int, hi: int, at: datetime) -> None:
    """Lock the members lo..hi whose lots lapsed or stopped pending by `at` (only those)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            _timed(
                """SELECT id FROM members WHERE id BETWEEN :lo AND :hi AND id IN (
                     SELECT member_id FROM point_lots
                      WHERE member_id BETWEEN :lo AND :hi AND remaining > 0
                        AND (expires_at <= :now OR pending_until <= :now))
                   ORDER BY id FOR UPDATE"""
            ),
            {"lo": lo, "hi": hi, "now": at},
        )


_DUE_PENDING = "pending_until IS NOT NULL AND pending_until <= :now"


def release_pending(session: Session, now: datetime, lo: int = 0, hi: int = 2**63 - 1) -> int:
    """Pending lots whose time is over (pending_until ≤ now) of the members lo..hi become
    spendable: their remaining points leave `members.pending` and the lot's pending_until is
    cleared. Returns the points released. No ledger entry: the points were in the balance."""
    _lock_range(session, lo, hi, now)
    params = {"now": now, "lo": lo, "hi": hi}
    ranged = f"{_DUE_PENDING} AND member_id BETWEEN :lo AND :hi"
    released = session.execute(
        _timed(f"SELECT COALESCE(SUM(remaining), 0) FROM point_lots WHERE {ranged}"), params
    ).scalar()
    if not released:
        return 0
    session.execute(
        _timed(
            f"""UPDATE members SET pending = pending - t.total
                  FROM (SELECT member_id, SUM(remaining) AS total FROM point_lots
                         WHERE {ranged} GROUP BY member_id) t
                 WHERE members.id = t.member_id"""
        ),
        params,
    )
    session.execute(_timed(f"UPDATE point_lots SET pending_until = NULL WHERE {ranged}"), params)
    _expire_all_members(session)
    return int(released)


def release_pending_of(session: Session, member: Member, now: datetime | None = None) -> int:
    """release_pending for one (locked) member, before their balance is used or shown; no
    query when they have no pending points."""
    if member.pending <= 0:
        return 0
    return release_pending(session, now or utcnow(), member.id, member.id)


def has_due_pending(session: Session, member_id: int, now: datetime | None = None) -> bool:
    """Whether the member has pending lots whose time is over (a cheap read)."""
    found = session.execute(
        _timed(
            "SELECT 1 FROM point_lots WHERE member_id = :m AND remaining > 0 "
            f"AND {_DUE_PENDING} LIMIT 1"
        ),
        {"m": member_id, "now": now or utcnow()},
    ).first()
    return found is not None


def _timed(sql: str) -> Any:
    return text(sql).bindparams(
        *(bindparam(k, type_=UTCDateTime()) for k in ("now", "as_of") if f":{k}" in sql)
    )


def _expire_all_members(session: Session) -> None:
    """Set-based writes bypass the ORM: members it holds must be read again."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Member | PointLot):
            session.expire(obj)


@dataclass
class Expired:
    """What an expiry run did."""

    lots: int = 0
    points: int = 0
    members: int = 0

    def add(self, other: Expired) -> None:
        self.lots += other.lots
        self.points += other.points
        self.members += other.members


_LAPSED = """remaining > 0 AND pending_until IS NULL AND expires_at IS NOT NULL
             AND expires_at <= :as_of"""


def lapsed_member_range(
    session: Session, as_of: datetime, after: int, limit: int
) -> tuple[int, int] | None:
    """The next batch: the first and last of up to `limit` member ids above `after` that have
    lapsed lots (as of `as_of`), or None when there are none."""
    ids = (
        session.execute(
            _timed(
                f"""SELECT member_id FROM point_lots WHERE {_LAPSED} AND member_id > :after
                GROUP BY member_id ORDER BY member_id LIMIT :limit"""
            ),
            {"as_of": as_of, "after": after, "limit": limit},
        )
        .scalars()
        .all()
    )
    return (int(ids[0]), int(ids[-1])) if ids else None


EXPIRY_ACTOR = "expiry"

# Each lapsed lot gives up what is left of it, but never points that are held: over a member's
# lapsed lots (soonest-expiring first) at most points - held - pending are taken. What a
# reservation holds stays in its lot: redeemed, it is consumed; released, the next run expires it.
_EXPIRY_BATCH_DDL = """CREATE TEMPORARY TABLE IF NOT EXISTS expiry_batch (
    lot_id BIGINT PRIMARY KEY, member_id BIGINT NOT NULL, take BIGINT NOT NULL,
    balance_after BIGINT NOT NULL)"""
_EXPIRY_BATCH = f"""
    INSERT INTO expiry_batch (lot_id, member_id, take, balance_after)
    SELECT id, member_id, take,
           points - SUM(take) OVER (PARTITION BY member_id ORDER BY expires_at, id
                                    ROWS UNBOUNDED PRECEDING)
      FROM (SELECT l.id, l.member_id, l.expires_at, m.points,
                   CASE WHEN m.points - m.held - m.pending - l.before <= 0 THEN 0
                        WHEN m.points - m.held - m.pending - l.before < l.remaining
                        THEN m.points - m.held - m.pending - l.before
                        ELSE l.remaining END AS take
              FROM (SELECT id, member_id, expires_at, remaining,
                           SUM(remaining) OVER (PARTITION BY member_id ORDER BY expires_at, id
                                                ROWS UNBOUNDED PRECEDING) - remaining AS before
                      FROM point_lots
                     WHERE {_LAPSED} AND member_id BETWEEN :lo AND :hi) l
              JOIN members m ON m.id = l.member_id) t
     WHERE take > 0
"""
_EXPIRY_ENTRIES = """
    INSERT INTO ledger_entries (member_id, kind, points, balance_after, reason, note, actor,
                                created_at)
    SELECT member_id, 'expire', -take, balance_after, 'points_expired',
           'lot ' || CAST(lot_id AS VARCHAR(20)), :actor, :now
      FROM expiry_batch ORDER BY member_id, balance_after DESC
"""
_EXPIRY_LOTS = """
    UPDATE point_lots SET remaining = remaining - b.take
      FROM expiry_batch b WHERE point_lots.id = b.lot_id
"""
_EXPIRY_MEMBERS = f"""
    UPDATE members SET {_add_points("(-t.total)")}, updated_at = :now
      FROM (SELECT member_id, SUM(take) AS total FROM expiry_batch GROUP BY member_id) t
     WHERE members.id = t.member_id
"""


def expire_lots(
    session: Session, lo: int, hi: int, *, as_of: datetime, now: datetime | None = None
) -> Expired:
    """Expire what is left of the lots of members lo..hi that lapsed by `as_of` (expires_at ≤
    as_of): one `expire` entry per lot (note `lot <id>`), the lot's remaining reduced by it,
    the member's balance too, in one transaction (the caller's). Pending points due by `as_of`
    are released first. Idempotent: a lot expired has nothing left to expire."""
    now = now or utcnow()
    release_pending(session, as_of, lo, hi)
    conn = session.connection()
    conn.exec_driver_sql(_EXPIRY_BATCH_DDL)
    conn.exec_driver_sql("DELETE FROM expiry_batch")
    params = {"lo": lo, "hi": hi, "as_of": as_of, "now": now, "actor": EXPIRY_ACTOR}
    session.execute(_timed(_EXPIRY_BATCH), params)
    lots, points, members = session.execute(
        text("SELECT COUNT(*), COALESCE(SUM(take), 0), COUNT(DISTINCT member_id) FROM expiry_batch")
    ).one()
    if lots and conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE expiry_batch")  # a temporary table has no statistics
    if lots:
        for sql in (_EXPIRY_ENTRIES, _EXPIRY_LOTS, _EXPIRY_MEMBERS):
            session.execute(_timed(sql), params)
        _expire_all_members(session)
        tally.note(session, tally.POINTS_EXPIRED, int(points))
    return Expired(int(lots), int(points), int(members))


def has_lapsed(session: Session, member_id: int, now: datetime | None = None) -> bool:
    """Whether lots of the member lapsed and still hold points (a cheap read). The expiry job
    runs hourly: for up to an hour after a midnight there may be some."""
    found = session.execute(
        _timed(f"SELECT 1 FROM point_lots WHERE member_id = :m AND {_LAPSED} LIMIT 1"),
        {"m": member_id, "as_of": now or utcnow()},
    ).first()
    return found is not None


def settle_due(session: Session, member: Member, now: datetime | None = None) -> None:
    """Before a (locked) member's balance is used or shown: what the hourly job would do for
    them now, so that points that lapsed at midnight are not spent or shown before it runs:
    their pending points whose time is over released, their lapsed lots expired
    (`expire_lots`, which releases first). A read when there is nothing to do."""
    now = now or utcnow()
    if has_lapsed(session, member.id, now):
        expire_lots(session, member.id, member.id, as_of=now, now=now)
    else:
        release_pending_of(session, member, now)
