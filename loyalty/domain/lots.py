"""Reading point lots: what expires when, and the points liability (docs/metrics.md). The lots are
written by ledger.py only; this module reads."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from loyalty.domain.members import get_member
from loyalty.domain.metrics import midnight
from loyalty.models import LedgerEntry, PointLot, Reward

#: the longest look-ahead of GET /members/{id}/expiring
MAX_EXPIRING_DAYS = 3650


def next_expiry(session: Session, member_id: int) -> dict[str, Any] | None:
    """The member's next points to expire: {points, at} — the remaining points of the lots that
    lapse soonest (all lots lapsing at that moment together) — or None when nothing expires."""
    at = session.scalar(
        select(func.min(PointLot.expires_at)).where(
            PointLot.member_id == member_id,
            PointLot.remaining > 0,
            PointLot.expires_at.is_not(None),
        )
    )
    if at is None:
        return None
    points = session.scalar(
        select(func.sum(PointLot.remaining)).where(
            PointLot.member_id == member_id, PointLot.remaining > 0, PointLot.expires_at == at
        )
    )
    return {"points": int(points or 0), "at": at}


def expiring(session: Session, member_id: int, days: int, now: datetime) -> dict[str, Any]:
    """The member's lots with points left that lapse within `days` days from `now` (an overdue
    one the nightly job has not expired yet included), soonest first, and their total.
    Raises NotFound."""
    get_member(session, member_id)
    until = now + timedelta(days=days)
    lots = session.scalars(
        select(PointLot)
        .where(
            PointLot.member_id == member_id,
            PointLot.remaining > 0,
            PointLot.expires_at.is_not(None),
            PointLot.expires_at <= until,
        )
        .order_by(PointLot.expires_at, PointLot.id)
    ).all()
    return {
        "member_id": member_id,
        "days": days,
        "until": until,
        "points": sum(lot.remaining for lot in lots),
        "lots": [
            {
                "id": lot.id,
                "points": lot.remaining,
                "earned": lot.points,
                "expires_at": lot.expires_at,
                "pending_until": lot.pending_until,
                "purchase_id": lot.purchase_id,
                "created_at": lot.created_at,
            }
            for lot in lots
        ],
    }


def _flows(session: Session, since: datetime | None, before: datetime) -> dict[str, int]:
    """Points moved by kind of entry in [since, before)."""
    kind, points = LedgerEntry.kind, LedgerEntry.points
    returned = and_(kind == "reverse", LedgerEntry.redemption_id.is_(None))
    window = [LedgerEntry.created_at < before]
    if since is not None:
        window.append(LedgerEntry.created_at >= since)
    row = session.execute(
        select(
            func.coalesce(func.sum(case((kind.in_(("earn", "bonus")), points), else_=0)), 0),
            func.coalesce(func.sum(case((kind == "redeem", -points), else_=0)), 0),
            func.coalesce(func.sum(case((kind == "expire", -points), else_=0)), 0),
            func.coalesce(func.sum(case((returned, -points), else_=0)), 0),
            func.coalesce(func.sum(case((kind == "adjust", points), else_=0)), 0),
            func.coalesce(func.sum(points), 0),
        ).where(*window)
    ).one()
    names = ("issued", "redeemed", "expired", "reversed", "adjusted", "net")
    return dict(zip(names, (int(v) for v in row), strict=True))


def _value_per_point(session: Session) -> tuple[int, int] | None:
    """The rewards' rate: (value, points_cost) of the active `amount_off` reward that gives the
    most per point, or None when there is none."""
    rewards = [
        (int(value), int(cost))
        for value, cost in session.execute(
            select(Reward.value, Reward.points_cost).where(
                Reward.kind == "amount_off", Reward.active.is_(True), Reward.points_cost > 0
            )
        )
        if value is not None
    ]
    return max(rewards, key=lambda r: r[0] / r[1]) if rewards else None


def _months(start: date, end: date) -> list[tuple[date, date]]:
    """The calendar months [start, end] touches, each cut to the period."""
    out, first = [], start.replace(day=1)
    while first <= end:
        following = (first + timedelta(days=32)).replace(day=1)
        out.append((max(first, start), min(following - timedelta(days=1), end)))
        first = following
    return out


def points_metrics(session: Session, start: date, end: date) -> dict[str, Any]:
    """issued, redeemed, expired, reversed, adjusted in the period, outstanding at its start
    and end, the liability's value at the rewards' rate, and the same per calendar month
    (docs/metrics.md, "Points")."""
    rate = _value_per_point(session)
    at_start = _flows(session, None, midnight(start))["net"]
    outstanding, months = at_start, []
    total = dict.fromkeys(("issued", "redeemed", "expired", "reversed", "adjusted", "net"), 0)
    for first, last in _months(start, end):
        flows = _flows(session, midnight(first), midnight(last + timedelta(days=1)))
        outstanding += flows["net"]
        total = {k: total[k] + v for k, v in flows.items()}
        months.append(
            {"month": first.strftime("%Y-%m"), **_public(flows), "outstanding": outstanding}
        )
    return {
        "start": start,
        "end": end,
        **_public(total),
        "outstanding_at_start": at_start,
        "outstanding": outstanding,
        "value_per_point": None if rate is None else round(rate[0] / rate[1], 4),
        "outstanding_value": None if rate is None else max(outstanding, 0) * rate[0] // rate[1],
        "months": months,
    }


def _public(flows: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in flows.items() if k != "net"}
