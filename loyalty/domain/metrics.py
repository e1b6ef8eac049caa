"""Retention metrics, computed in SQL to the definitions of docs/metrics.md (names as there).

All days are UTC calendar days, `start` and `end` inclusive: P = [start 00:00, end+1 00:00),
P₋ = the D days before start. Every purchase counts (a free one included); returns do not undo a
purchase and are reported separately, by when the return happened.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import bindparam, case, func, select, text
from sqlalchemy.orm import Session

from loyalty.models import Purchase, Return
from loyalty.models.types import UTCDateTime


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def ratio(numerator: int | Decimal, denominator: int | Decimal, places: int) -> float | None:
    """numerator / denominator rounded half-up to `places` decimals; None when denominator is 0."""
    if not denominator:
        return None
    exact = Decimal(numerator) / Decimal(denominator)
    return float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def retention(
    session: Session, start: date, end: date, *, store_id: str | None = None
) -> dict[str, Any]:
    """Every count and rate of metrics.md for the period [start, end]."""
    days = (end - start).days + 1
    p_start, p_end = _midnight(start), _midnight(end + timedelta(days=1))
    prev_start = p_start - timedelta(days=days)

    in_p = (Purchase.occurred_at >= p_start) & (Purchase.occurred_at < p_end)
    in_prev = (Purchase.occurred_at >= prev_start) & (Purchase.occurred_at < p_start)
    per_member = (
        select(
            Purchase.member_id,
            func.sum(case((in_p, 1), else_=0)).label("in_p"),
            func.sum(case((in_prev, 1), else_=0)).label("in_prev"),
            func.sum(case((in_p, Purchase.amount), else_=0)).label("revenue"),
            func.min(Purchase.occurred_at).label("first_at"),
        )
        .where(Purchase.occurred_at < p_end)
        .group_by(Purchase.member_id)
    )
    if store_id is not None:
        per_member = per_member.where(Purchase.store_id == store_id)
    m = per_member.subquery()
    row = session.execute(
        select(
            func.coalesce(func.sum(case((m.c.in_prev > 0, 1), else_=0)), 0),
            func.coalesce(func.sum(case((m.c.in_p > 0, 1), else_=0)), 0),
            func.coalesce(
                func.sum(case(((m.c.in_p > 0) & (m.c.first_at >= p_start), 1), else_=0)), 0
            ),
            func.coalesce(func.sum(case(((m.c.in_prev > 0) & (m.c.in_p > 0), 1), else_=0)), 0),
            func.coalesce(func.sum(case((m.c.in_p >= 2, 1), else_=0)), 0),
            func.coalesce(func.sum(case((m.c.in_p == 1, 1), else_=0)), 0),
            func.coalesce(func.sum(m.c.in_p), 0),
            func.coalesce(func.sum(m.c.revenue), 0),
        )
    ).one()
    s, e, n, retained, repeat, one_time, purchases, revenue = (int(v) for v in row)

    returned = select(func.coalesce(func.sum(Return.amount), 0)).where(
        Return.occurred_at >= p_start, Return.occurred_at < p_end
    )
    if store_id is not None:
        returned = returned.join(Purchase, Purchase.id == Return.purchase_id).where(
            Purchase.store_id == store_id
        )
    returned_amount = int(session.scalar(returned) or 0)

    lost = s - retained
    churn = ratio(lost, s, 4)
    aov = ratio(revenue, purchases, 2)
    frequency = ratio(purchases, e, 4)
    clv = None
    if churn and aov is not None and e:
        # AOV × frequency ÷ churn, from the exact fractions, then rounded like the rates
        exact_clv = (Decimal(revenue) / purchases) * (Decimal(purchases) / e) / (Decimal(lost) / s)
        clv = float(exact_clv.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))
    return {
        "start": start,
        "end": end,
        "store_id": store_id,
        "customers_at_start": s,
        "active_customers": e,
        "new_customers": n,
        "retained_customers": retained,
        "lost_customers": lost,
        "reactivated_customers": e - n - retained,
        "purchases": purchases,
        "revenue": revenue,
        "returned_amount": returned_amount,
        "repeat_customers": repeat,
        "one_time_customers": one_time,
        "retention_rate": ratio(retained, s, 4),
        "churn_rate": churn,
        "repeat_customer_rate": ratio(repeat, e, 4),
        "purchase_frequency": frequency,
        "average_order_value": aov,
        "customer_lifetime_value": clv,
        "definitions": "docs/metrics.md",
    }


# cohorts ---------------------------------------------------------------------------------------
_MONTH_INDEX = {
    # months since year 0 of a UTC timestamp, in each database's own terms
    "postgresql": "(EXTRACT(YEAR FROM occurred_at AT TIME ZONE 'UTC') * 12"
    " + EXTRACT(MONTH FROM occurred_at AT TIME ZONE 'UTC') - 1)",
    "sqlite": "(CAST(substr(occurred_at, 1, 4) AS INTEGER) * 12"
    " + CAST(substr(occurred_at, 6, 2) AS INTEGER) - 1)",
}


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _month_name(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def cohorts(session: Session, start: date, end: date) -> dict[str, Any]:
    """The monthly cohort matrix of metrics.md: per first-purchase month in [start, end], its size
    and, for k = 0 … the month of `end`, the share that bought in the k-th month after."""
    first_month, last_month = _month_index(start), _month_index(end)
    after_last = date(
        end.year + (end.month == 12), end.month % 12 + 1, 1
    )  # the first day after the month of `end`
    month = _MONTH_INDEX[session.get_bind().dialect.name]
    rows = session.execute(
        text(
            f"""
            WITH pm AS (
              SELECT member_id, {month} AS m FROM purchases
              WHERE occurred_at < :before GROUP BY member_id, {month}
            ), first AS (
              SELECT member_id, MIN(m) AS c FROM pm GROUP BY member_id
            )
            SELECT first.c AS c, pm.m - first.c AS k, COUNT(*) AS n
            FROM pm JOIN first ON first.member_id = pm.member_id
            WHERE first.c BETWEEN :first_month AND :last_month
            GROUP BY first.c, pm.m - first.c
            """
        ).bindparams(bindparam("before", type_=UTCDateTime())),
        {"before": _midnight(after_last), "first_month": first_month, "last_month": last_month},
    ).all()
    counts: dict[int, dict[int, int]] = {}
    for c, k, n in rows:
        counts.setdefault(int(c), {})[int(k)] = int(n)
    out = []
    for c in sorted(counts):
        size = counts[c].get(0, 0)
        retention = [ratio(counts[c].get(k, 0), size, 4) for k in range(last_month - c + 1)]
        out.append({"cohort": _month_name(c), "size": size, "retention": retention})
    return {"start": start, "end": end, "cohorts": out, "definitions": "docs/metrics.md"}
