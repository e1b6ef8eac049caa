"""The points ledger: the ONLY code that writes ledger entries or members' points and held.

Every change locks the member row first (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite the write
transaction's lock), appends one entry with `balance_after`, and updates the cached balance in the
same transaction. The database backs this up: entries cannot be updated or deleted (trigger), and
`points - held >= available_floor` (CHECK), where spends set the floor to 0 and only returns,
earnings and releases may leave it below (a return's debt).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from loyalty.domain.cards import normalise_card_number
from loyalty.domain.context import Actor
from loyalty.domain.members import check_card_use, require_member_ref
from loyalty.domain.sql import Fast, bigint_array
from loyalty.errors import (
    InsufficientPoints,
    NotFound,
)
from loyalty.models import ENTRY_KINDS, Card, LedgerEntry, Member
from loyalty.models.types import UTCDateTime


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
) -> LedgerEntry:
    """Append an entry and update the member's cached balance. `member` must be locked.

    A negative change to a spending kind needs enough `available` points (raises
    InsufficientPoints); `allow_debt` (returns) lets `available` go below zero.
    """
    if kind not in ENTRY_KINDS:
        raise ValueError(kind)
    if points == 0:
        raise ValueError("a ledger entry moves at least one point")
    available_after = member.points + points - member.held
    if points < 0 and not allow_debt and available_after < 0:
        raise InsufficientPoints(
            f"{-points} points needed, {member.points - member.held} available.", field="points"
        )
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
    return entry


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
    check_spendable(member.points - member.held, points, field="reward_id")
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


# earning: crediting points in two statements ---------------------------------------------
# The UPDATE takes the row lock itself and returns the new balance; `points` on the right-hand
# side is the old value on PostgreSQL and SQLite alike.
def _add_points(delta: str) -> str:
    """SQL SET clause adding `delta` (an SQL expression) to a member's points, with post()'s
    floor rule: an addition that still leaves `available` below zero keeps that as the floor (a
    return's debt not yet paid), otherwise the floor goes back to 0."""
    return f"""points = points + {delta},
           available_floor = CASE WHEN points + {delta} - held < 0
                                  THEN points + {delta} - held ELSE 0 END"""


_CREDIT = Fast(
    text(
        f"""
        UPDATE members
           SET {_add_points(":delta")},
               updated_at = :now
         WHERE id = :member_id
        RETURNING points, held
        """
    ).bindparams(bindparam("now", type_=UTCDateTime()))
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
_ENTRY = Fast(
    insert(cast(Table, LedgerEntry.__table__)).values({c: bindparam(c) for c in _EARN_COLUMNS})
)


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
) -> tuple[int, int]:
    """Add `points` (> 0) with one entry, without loading the member: (points, held) after.

    For earning, where no check is needed before the write, so no SELECT … FOR UPDATE either:
    the UPDATE locks the row and its RETURNING gives `balance_after`. Raises NotFound.
    """
    if points <= 0 or kind not in ("earn", "bonus"):
        raise ValueError("credit() adds earned points; use post() for anything else")
    conn = session.connection()
    _expire_cached(session, member_id)
    row = _CREDIT.first(conn, {"delta": points, "now": now, "member_id": member_id})
    if row is None:
        raise NotFound(f"No member {member_id}.", field="member_id")
    balance, held = int(row[0]), int(row[1])
    _ENTRY.run(
        conn,
        {
            "member_id": member_id,
            "kind": kind,
            "points": points,
            "balance_after": balance,
            "reason": reason,
            "purchase_id": purchase_id,
            "api_client_id": actor.client_id,
            "actor": actor.name,
            "created_at": now,
        },
    )
    return balance, held


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
    """One `earn` entry per row of the table `source` (purchase_id, member_id, points) that
    earns, and the members' balances: (entries posted, members updated). The members must be
    locked. `source` is a table name of the caller's, never user input."""
    conn = session.connection()
    params = {"client": client_id, "actor": actor_name, "now": now}
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
            UPDATE members SET {_add_points("t.earned")}, updated_at = :now
              FROM (SELECT member_id, SUM(points) AS earned FROM {source} WHERE points > 0
                     GROUP BY member_id) t
             WHERE members.id = t.member_id
            """
        ).bindparams(bindparam("now", type_=UTCDateTime())),
        params,
    ).rowcount
    return posted, updated


def copy_earnings(
    cursor: Any,
    earnings: list[tuple[int, int, int]],
    balances: dict[int, int],
    *,
    client_id: int,
    actor_name: str,
    now: datetime,
) -> tuple[int, int]:
    """PostgreSQL, through a psycopg cursor of the session's connection: one `earn` entry per
    (member_id, purchase_id, points) by binary COPY, and the members' balances. `balances` holds
    each member's points as read under the lock. Returns (points earned, members updated)."""
    running = dict(balances)
    earned: dict[int, int] = {}
    with cursor.copy(f"COPY ledger_entries ({_ENTRY_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_ENTRY_TYPES)
        for member_id, purchase_id, points in sorted(earnings):
            running[member_id] += points
            earned[member_id] = earned.get(member_id, 0) + points
            copy.write_row(
                (
                    member_id,
                    "earn",
                    points,
                    running[member_id],
                    "purchase",
                    purchase_id,
                    client_id,
                    actor_name,
                    now,
                )
            )
    if not earned:
        return 0, 0
    cursor.execute(
        f"""
        UPDATE members SET {_add_points("t.earned")}, updated_at = %s
          FROM unnest(%s::bigint[], %s::bigint[]) AS t(id, earned)
         WHERE members.id = t.id
        """,
        (now, bigint_array(earned), bigint_array(earned.values())),
    )
    return sum(earned.values()), cursor.rowcount


# verification ---------------------------------------------------------------------------------
@dataclass
class Verification:
    members: int
    entries: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session, limit: int = 50) -> Verification:
    """Check the books in SQL (fast on millions of entries):

    1. every member's cached `points` equals the sum of their entries;
    2. every entry's `balance_after` equals the running sum of the member's entries up to it;
    3. no purchase earned twice (one `earn` entry at most);
    4. each purchase's `points_earned` equals its earn + bonus entries, and `points_reversed`
       the reverse entries of its returns;
    5. `held` equals the points of the member's open reservations;
    6. `held` ≥ 0 and `available` ≥ the member's floor.
    """
    problems: list[str] = []
    members = session.scalar(select(func.count()).select_from(Member)) or 0
    entries = session.scalar(select(func.count()).select_from(LedgerEntry)) or 0
    checks = {
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
    }
    for name, sql in checks.items():
        rows = session.execute(text(sql + f" LIMIT {int(limit)}")).all()
        problems.extend(f"{name}: {tuple(row)}" for row in rows)
    return Verification(members=members, entries=entries, problems=problems)
