"""Tiers: who holds which tier, from their net spend, and when it changes.

Qualification counts net spend in minor units — each purchase's amount minus what was
returned of it, at the purchase's time — inside the programme's window, never points:

- `rolling_365`: the purchases of the last 365 days;
- `calendar_year`: the purchases since 1 January, midnight in the programme's time zone.

A member holds the highest tier whose `qualifying_spend` their spend reaches (`tier_for`).
A purchase raises the tier at once, after its own points were earned at the tier held before
it (`after_purchase`). Lowering follows `tier_downgrade`:

- `immediate`: the tier is what the spend reaches now, recomputed on every return
  (`after_return`) and by the nightly recompute;
- `end_of_period`: a tier reached is held until `tier_held_until` — under `rolling_365` 365
  days after it was reached, under `calendar_year` the end of the year after the one in which
  it was reached — plus `tier_grace_days`. Returns never lower it. When that date has passed,
  the recompute sets the tier the spend then reaches (under `calendar_year` the better of the
  year just ended and the year so far) and holds it for a new period.

A member's tier on a table that no longer has it is replaced by what their spend reaches.
Every change writes a `tier_changes` row (from, to, spend, reason, actor, when).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from loyalty.domain import program as programme
from loyalty.domain.context import Actor
from loyalty.domain.sql import Fast
from loyalty.models import Member, Purchase, TierChange
from loyalty.models.types import utcnow

WINDOWS = ("rolling_365", "calendar_year")
DOWNGRADES = ("immediate", "end_of_period")
ROLLING = timedelta(days=365)

Tiers = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class TierView:
    """The member's tier as earning reads it: its name and its exact multiplier."""

    name: str
    multiplier: Decimal


def tier_view(tiers: Tiers | None, name: str | None) -> TierView | None:
    """The tier `name` of this table (None without one, or when the table no longer has it)."""
    for tier in tiers or ():
        if tier["name"] == name:
            return TierView(name=tier["name"], multiplier=Decimal(str(tier["multiplier"])))
    return None


def tier_for(spend: int, tiers: Tiers | None) -> str | None:
    """The highest tier whose qualifying_spend `spend` reaches (None below the lowest)."""
    reached = None
    for tier in tiers or ():
        if spend >= tier["qualifying_spend"]:
            reached = tier["name"]
    return reached


def rank(name: str | None, tiers: Tiers | None) -> int:
    """The tier's place in the table (0 the lowest); −1 for none or a name the table lacks."""
    for i, tier in enumerate(tiers or ()):
        if tier["name"] == name:
            return i
    return -1


def reachable(tier: str | None, tiers: Tiers, spend_bound: int) -> bool:
    """Whether a tier above `tier` may be reached with a spend of at most `spend_bound`."""
    above = rank(tier, tiers) + 1
    return above < len(tiers) and spend_bound >= tiers[above]["qualifying_spend"]


def _local_year_start(year: int, zone: Any) -> datetime:
    return datetime(year, 1, 1, tzinfo=zone)


@dataclass(frozen=True)
class Policy:
    """The programme's tier settings (from the Program row or the purchase's one-query rates)."""

    tiers: Tiers
    window: str = "rolling_365"
    downgrade: str = "immediate"
    grace_days: int = 0
    timezone: str = "UTC"

    @classmethod
    def of(cls, source: Any) -> Policy:
        return cls(
            tiers=getattr(source, "tiers", None) or [],
            window=getattr(source, "tier_window", None) or "rolling_365",
            downgrade=getattr(source, "tier_downgrade", None) or "immediate",
            grace_days=getattr(source, "tier_grace_days", None) or 0,
            timezone=getattr(source, "timezone", None) or "UTC",
        )

    @property
    def zone(self) -> Any:
        return programme.programme_zone(self)

    def window_start(self, at: datetime) -> datetime:
        """Where the qualifying window ending at `at` starts."""
        if self.window == "calendar_year":
            local = (at - timedelta(microseconds=1)).astimezone(self.zone)
            return _local_year_start(local.year, self.zone)
        return at - ROLLING

    def held_until(self, at: datetime, *, from_last_year: bool = False) -> datetime | None:
        """`end_of_period`: until when a tier reached (or kept) at `at` is held; None under
        `immediate`. `from_last_year`: kept on the spend of the calendar year just ended."""
        if self.downgrade != "end_of_period":
            return None
        grace = timedelta(days=self.grace_days)
        if self.window == "calendar_year":
            year = at.astimezone(self.zone).year + (1 if from_last_year else 2)
            return (_local_year_start(year, self.zone) + grace).astimezone(at.tzinfo)
        return at + ROLLING + grace


# spend -----------------------------------------------------------------------------------------

_NET = func.coalesce(func.sum(Purchase.amount - Purchase.returned_amount), 0)
_SPEND_SINCE = Fast(
    select(_NET).where(
        Purchase.member_id == bindparam("member_id"),
        Purchase.occurred_at >= bindparam("start"),
    )
)


def spend_since(conn: Connection, member_id: int, start: datetime) -> int:
    """The member's net spend of the purchases from `start` on (one indexed query)."""
    row = _SPEND_SINCE.first(conn, {"member_id": member_id, "start": start})
    return int(row[0]) if row else 0


def spends(session: Session, start: datetime, end: datetime) -> dict[int, int]:
    """Every member's net spend of the purchases in [start, end), in one grouped query."""
    rows = session.execute(
        select(Purchase.member_id, _NET)
        .where(Purchase.occurred_at >= start, Purchase.occurred_at < end)
        .group_by(Purchase.member_id)
    )
    return {int(member_id): int(spend) for member_id, spend in rows}


# decisions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """A change of one member's tier, decided (and applied unless it was a dry run)."""

    member_id: int
    from_tier: str | None
    to_tier: str | None
    spend: int
    held_until: datetime | None


def decide(
    policy: Policy,
    tier: str | None,
    held_until: datetime | None,
    spend: int,
    at: datetime,
    *,
    last_year: int | None = None,
    may_lower: bool = True,
) -> tuple[str | None, datetime | None] | None:
    """The member's (tier, held_until) after this, or None when nothing changes.

    `spend`: the net spend of the window ending at `at`; `last_year`: under `calendar_year`
    with `end_of_period`, the spend of the calendar year before (None: not looked at).
    `may_lower`: False on a purchase (it only raises).
    """
    reached = tier_for(spend, policy.tiers)
    current = rank(tier, policy.tiers)
    if rank(reached, policy.tiers) > current:
        return reached, policy.held_until(at)
    if not may_lower:
        return None
    new: tuple[str | None, datetime | None]
    if policy.downgrade == "immediate":
        new = (reached, None)
    elif current >= 0 and held_until is None:
        new = (tier, policy.held_until(at))  # held from now (the policy was just switched)
    elif current >= 0 and held_until is not None and at < held_until:
        return None  # held to the end of its period
    else:
        new = _after_period(policy, reached, last_year, at)
    return None if new == (tier, held_until) else new


def _after_period(
    policy: Policy, reached: str | None, last_year: int | None, at: datetime
) -> tuple[str | None, datetime | None]:
    """`end_of_period`, the period over: the tier the spend reaches now or, under
    `calendar_year`, the year just ended reached, if better; held for a new period."""
    kept = tier_for(last_year, policy.tiers) if last_year is not None else None
    if rank(kept, policy.tiers) > rank(reached, policy.tiers):
        return kept, policy.held_until(at, from_last_year=True)
    return reached, policy.held_until(at) if reached is not None else None


# writes ----------------------------------------------------------------------------------------

_MEMBERS = cast(Table, Member.__table__)
_MOVE = (
    update(_MEMBERS)
    .where(
        _MEMBERS.c.id == bindparam("b_member_id"),
        _MEMBERS.c.tier.is_not_distinct_from(bindparam("b_from_tier")),
    )
    .values(tier=bindparam("b_to_tier"), tier_held_until=bindparam("b_held_until"))
)
_MOVE_SINCE = _MOVE.values(tier_since=bindparam("b_since"))
_RECORD = insert(cast(Table, TierChange.__table__))


def apply(conn: Connection, move: Move, *, at: datetime, reason: str, actor: Actor) -> bool:
    """Write the move if the member still holds `from_tier` (a concurrent change wins), with
    its tier_changes row. Returns whether it was written."""
    changed = move.from_tier != move.to_tier
    params = {
        "b_member_id": move.member_id,
        "b_from_tier": move.from_tier,
        "b_to_tier": move.to_tier,
        "b_held_until": move.held_until,
    }
    if changed:
        params["b_since"] = at if move.to_tier is not None else None
    result = conn.execute(_MOVE_SINCE if changed else _MOVE, params)
    if result.rowcount != 1:
        return False
    if not changed:  # only the held_until date moved on
        return True
    conn.execute(
        _RECORD,
        {
            "member_id": move.member_id,
            "from_tier": move.from_tier,
            "to_tier": move.to_tier,
            "spend": move.spend,
            "reason": reason,
            "actor": actor.name,
            "at": at,
        },
    )
    return True


def _forget_cached(session: Session, member_id: int) -> None:
    """Keep an ORM copy of the member in this session truthful after the Core write."""
    cached = session.identity_map.get(identity_key(Member, member_id))
    if cached is not None:
        session.expire(cached, ["tier", "tier_since", "tier_held_until"])


def after_purchase(
    session: Session,
    member_id: int,
    policy: Policy,
    tier: str | None,
    gross_spend: int,
    *,
    actor: Actor,
) -> None:
    """Raise the member's tier at once when their spend, this purchase counted, reaches a
    higher one. The purchase's own points were earned at `tier` (the one held before it).

    On the purchase path: nothing when the programme has no tiers, the member holds the top
    one, or `gross_spend` (members.gross_spend after this purchase, read under the member's row
    lock: every purchase ever, returns not taken off, so no window's net spend is larger) is
    below the next tier's threshold; else one indexed query of the spend, and the writes only
    when the tier goes up.
    """
    if not policy.tiers or not reachable(tier, policy.tiers, gross_spend):
        return
    at = utcnow()
    conn = session.connection()
    spend = spend_since(conn, member_id, policy.window_start(at))
    for _ in range(2):  # the second time: a concurrent purchase changed the tier meanwhile
        decision = decide(policy, tier, None, spend, at, may_lower=False)
        if decision is None:
            return
        move = Move(member_id, tier, decision[0], spend, decision[1])
        if apply(conn, move, at=at, reason="purchase", actor=actor):
            _forget_cached(session, member_id)
            return
        tier = conn.execute(select(Member.tier).where(Member.id == member_id)).scalar()


def after_return(session: Session, member: Member, *, actor: Actor) -> None:
    """Under `immediate`, the tier the member's spend reaches after a return (it may go
    down); under `end_of_period` a return never changes the tier."""
    policy = Policy.of(programme.ensure_program(session))
    if not policy.tiers or policy.downgrade != "immediate":
        return
    at = utcnow()
    conn = session.connection()
    spend = spend_since(conn, member.id, policy.window_start(at))
    decision = decide(policy, member.tier, member.tier_held_until, spend, at)
    if decision is not None:
        move = Move(member.id, member.tier, decision[0], spend, decision[1])
        apply(conn, move, at=at, reason="return", actor=actor)
        _forget_cached(session, member.id)


def recompute(
    session: Session,
    *,
    at: datetime,
    actor: Actor,
    reason: str = "recompute",
    dry_run: bool = False,
    policy: Policy | None = None,
) -> list[Move]:
    """Every member's tier as of `at` (purchases before it count), by the policy: raises,
    lowers (`immediate`; `end_of_period` once the tier's period is over) and replaces tiers
    the table no longer has. Returns the tier changes, by member id; `dry_run` writes nothing.

    Set-based: one grouped query of the spends (two under `calendar_year` with
    `end_of_period`: the year so far and the one before), one of the members holding a tier.
    """
    policy = policy or Policy.of(programme.ensure_program(session))
    start = policy.window_start(at)
    spend = spends(session, start, at) if policy.tiers else {}
    last_year: dict[int, int] | None = None
    if policy.window == "calendar_year" and policy.downgrade == "end_of_period":
        last_year = spends(session, policy.window_start(start), start) if policy.tiers else {}
    candidates = _candidates(session, policy, spend, last_year)
    moves = []
    conn = session.connection()
    for member_id in sorted(candidates):
        tier, held = candidates[member_id]
        last = None if last_year is None else last_year.get(member_id, 0)
        decision = decide(policy, tier, held, spend.get(member_id, 0), at, last_year=last)
        if decision is None:
            continue
        move = Move(member_id, tier, decision[0], spend.get(member_id, 0), decision[1])
        written = dry_run or apply(conn, move, at=at, reason=reason, actor=actor)
        if written and move.from_tier != move.to_tier:
            moves.append(move)
    if not dry_run:
        session.expire_all()
    return moves


def _candidates(
    session: Session, policy: Policy, spend: dict[int, int], last_year: dict[int, int] | None
) -> dict[int, tuple[str | None, datetime | None]]:
    """The members whose tier may change: those holding one, and those whose spend reaches
    one (every member when the lowest tier needs no spend)."""
    everyone = bool(policy.tiers) and policy.tiers[0]["qualifying_spend"] == 0
    query = select(Member.id, Member.tier, Member.tier_held_until)
    if not everyone:
        query = query.where(Member.tier.is_not(None))
    found = {int(i): (tier, held) for i, tier, held in session.execute(query)}
    for member_id, amount in [*spend.items(), *(last_year or {}).items()]:
        if member_id not in found and tier_for(amount, policy.tiers) is not None:
            found[member_id] = (None, None)
    return found


# reading ---------------------------------------------------------------------------------------


def progress(session: Session, member: Member, at: datetime) -> dict[str, Any] | None:
    """What GET /members/{id} shows of the tier: the spend counted now, the next tier and the
    spend still missing to reach it, and the date the current tier is held until. None when
    the programme has no tiers."""
    policy = Policy.of(programme.ensure_program(session))
    if not policy.tiers:
        return None
    conn = session.connection()
    spend = spend_since(conn, member.id, policy.window_start(at))
    place = rank(member.tier, policy.tiers)
    following = policy.tiers[place + 1] if place + 1 < len(policy.tiers) else None
    if policy.downgrade == "end_of_period":
        held = member.tier_held_until
    else:
        held = _held_while_spend_lasts(conn, policy, member, spend, at)
    return {
        "spend": spend,
        "next_tier": following["name"] if following else None,
        "spend_to_next": max(following["qualifying_spend"] - spend, 0) if following else None,
        "held_until": held,
    }


_PURCHASES_SINCE = (
    select(Purchase.occurred_at, Purchase.amount - Purchase.returned_amount)
    .where(
        Purchase.member_id == bindparam("member_id"),
        Purchase.occurred_at >= bindparam("start"),
    )
    .order_by(Purchase.occurred_at)
)


def _held_while_spend_lasts(
    conn: Connection, policy: Policy, member: Member, spend: int, at: datetime
) -> datetime | None:
    """`immediate`: when the tier goes if nothing more is bought — the start of the next
    calendar year, or (rolling) when enough purchases have left the 365 days. None without a
    tier, for a tier that needs no spend, or one the spend no longer reaches."""
    place = rank(member.tier, policy.tiers)
    needed = policy.tiers[place]["qualifying_spend"] if place >= 0 else 0
    if place < 0 or needed == 0 or spend < needed:
        return None
    if policy.window == "calendar_year":
        year = at.astimezone(policy.zone).year + 1
        return _local_year_start(year, policy.zone).astimezone(at.tzinfo)
    left = spend
    for occurred_at, amount in conn.execute(
        _PURCHASES_SINCE, {"member_id": member.id, "start": policy.window_start(at)}
    ):
        left -= amount
        if left < needed:
            return occurred_at + ROLLING
    return None


#: At most this many moves are listed in a PUT /program response (all are counted).
MOVES_LISTED = 1000


def moves_view(moves: Sequence[Move]) -> dict[str, Any]:
    """The tier moves as PUT /program lists them."""
    return {
        "tier_moves_count": len(moves),
        "tier_moves": [
            {
                "member_id": m.member_id,
                "from_tier": m.from_tier,
                "to_tier": m.to_tier,
                "spend": m.spend,
            }
            for m in moves[:MOVES_LISTED]
        ],
    }


def end_of_day(session: Session, day: date) -> datetime:
    """The instant `day` ends: the next midnight in the programme's time zone (`--as-of`)."""
    zone = programme.programme_zone(programme.ensure_program(session))
    return datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(days=1)
