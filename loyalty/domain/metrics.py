"""Retention metrics, computed in SQL to the definitions of docs/metrics.md (names as there).

All days are UTC calendar days, `start` and `end` inclusive: P = [start 00:00, end+1 00:00),
P₋ = the D days before start. Every purchase counts (a free one included); returns do not undo a
purchase and are reported separately, by when the return happened.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Date, bindparam, func, select, text
from sqlalchemy.orm import Session

from loyalty.domain import rollups
from loyalty.models import VOUCHER_KINDS, Purchase, Return
from loyalty.models.types import UTCDateTime


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def reporting_memory(session: Session) -> None:
    """PostgreSQL: give this transaction's aggregates room (per-member hash tables of 100k+
    members spill to disk at the default 4 MB work_mem); reset when the transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        # the plans' estimates of the purchases past the rollups are blind (a third of the
        # table), which tips them over the JIT threshold: 100 ms of compiling for nothing
        session.execute(text("SET LOCAL jit = off"))


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
    reporting_memory(session)
    days = (end - start).days + 1
    p_start, p_end = midnight(start), midnight(end + timedelta(days=1))
    s, e, n, retained, repeat, one_time, purchases, revenue = _period_counts(
        session, start - timedelta(days=days), start, end + timedelta(days=1), store_id
    )
    lost = s - retained
    aov = ratio(revenue, purchases, 2)
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
        "returned_amount": _returned_amount(session, p_start, p_end, store_id),
        "repeat_customers": repeat,
        "one_time_customers": one_time,
        "retention_rate": ratio(retained, s, 4),
        "churn_rate": ratio(lost, s, 4),
        "repeat_customer_rate": ratio(repeat, e, 4),
        "purchase_frequency": ratio(purchases, e, 4),
        "average_order_value": aov,
        "customer_lifetime_value": _clv(revenue, purchases, e, lost, s),
        "definitions": "docs/metrics.md",
    }


# The purchase_links cells of P₋ and P (one scope), corrected for the purchases past the rollups:
# the members with such a purchase are taken out as the rollups have them and put back with those
# purchases added, all in one statement (one snapshot). Then, with a = start, q = start of P₋:
# E = first purchases in P (kind 1, previous before a), N = those with no previous one, S the same
# for P₋, retained = first purchases in P whose previous one is in P₋, and the members with two or
# more purchases in P = purchases in P after one in P (kind 1) − those after two in P (kind 2):
# each such member has k − 1 of the first and k − 2 of the second.
_PERIOD_COUNTS = """
    WITH tail AS ({tail}),
    old_src AS ({days}),
    new_src AS (
      SELECT scope, member_id, day, SUM(n) AS n, SUM(rev) AS rev FROM (
        SELECT * FROM old_src
        UNION ALL
        SELECT :scope, member_id, day, 1, amount FROM tail WHERE true {store_tail}
      ) u GROUP BY scope, member_id, day
    ),
    {old_links},
    {new_links},
    cells AS (
      SELECT day, kind, prev_day, purchases AS n, revenue AS rev FROM purchase_links
       WHERE scope = :scope AND day >= :prev_day AND day < :end_day
      UNION ALL
      SELECT day, kind, prev_day, -n, -rev FROM old_links
       WHERE day >= :prev_day AND day < :end_day
      UNION ALL
      SELECT day, kind, prev_day, n, rev FROM new_links
       WHERE day >= :prev_day AND day < :end_day
    )
    SELECT
      COALESCE(SUM(CASE WHEN kind = 1 AND day < :start_day AND prev_day < :prev_day
                        THEN n END), 0),
      COALESCE(SUM(CASE WHEN kind = 1 AND day >= :start_day AND prev_day < :start_day
                        THEN n END), 0),
      COALESCE(SUM(CASE WHEN kind = 1 AND day >= :start_day AND prev_day = :no_day
                        THEN n END), 0),
      COALESCE(SUM(CASE WHEN kind = 1 AND day >= :start_day AND prev_day >= :prev_day
                         AND prev_day < :start_day THEN n END), 0),
      COALESCE(SUM(CASE WHEN day >= :start_day AND prev_day >= :start_day
                        THEN CASE WHEN kind = 1 THEN n ELSE -n END END), 0),
      COALESCE(SUM(CASE WHEN kind = 1 AND day >= :start_day THEN n END), 0),
      COALESCE(SUM(CASE WHEN kind = 1 AND day >= :start_day THEN rev END), 0)
      FROM cells
"""


def _links_cte(name: str, source: str) -> str:
    """A CTE `name` of the purchase_links cells the member-days of `source` make."""
    return f"""{name}_w AS (SELECT * FROM {source}),
    {name} AS (
      WITH {rollups.links_sql(f"{name}_w")} SELECT * FROM links
    )"""


def _period_counts(
    session: Session, prev_day: date, start: date, end_day: date, store_id: str | None
) -> tuple[int, ...]:
    """S, E, N, retained, repeat, one-time customers, purchases and revenue from the links of the
    days of P₋ and P (docs/metrics.md, "How the figures are computed")."""
    dialect = rollups.dialect_of(session)
    scope = rollups.store_key(store_id) if store_id is not None else ""
    sql = _PERIOD_COUNTS.format(
        tail=rollups.tail_sql(dialect),
        days=rollups.days_sql("pd.member_id IN (SELECT member_id FROM tail)", ":scope"),
        store_tail="AND store = :scope" if store_id is not None else "",
        old_links=_links_cte("old_links", "old_src"),
        new_links=_links_cte("new_links", "new_src"),
    )
    names = ("prev_day", "start_day", "end_day", "no_day")
    params: dict[str, Any] = {
        "prev_day": prev_day,
        "start_day": start,
        "end_day": end_day,
        "no_day": rollups.NO_DAY,
        "scope": scope,
    }
    days = [bindparam(name, type_=Date()) for name in names]
    s, e, n, retained, repeat, purchases, revenue = (
        int(v or 0) for v in session.execute(text(sql).bindparams(*days), params).one()
    )
    return s, e, n, retained, repeat, e - repeat, purchases, revenue


def _returned_amount(
    session: Session, p_start: datetime, p_end: datetime, store_id: str | None
) -> int:
    """The amount of the returns made in the period (of the store's purchases, with store_id)."""
    returned = select(func.coalesce(func.sum(Return.amount), 0)).where(
        Return.occurred_at >= p_start, Return.occurred_at < p_end
    )
    if store_id is not None:
        returned = returned.join(Purchase, Purchase.id == Return.purchase_id).where(
            Purchase.store_id == store_id
        )
    return int(session.scalar(returned) or 0)


def _clv(revenue: int, purchases: int, active: int, lost: int, at_start: int) -> float | None:
    """AOV × frequency ÷ churn, from the exact fractions, then rounded like the rates."""
    if not (purchases and active and ratio(lost, at_start, 4)):
        return None  # as the rounded churn rate reads: no churn, no lifetime value
    exact = (
        (Decimal(revenue) / purchases) * (Decimal(purchases) / active) / (Decimal(lost) / at_start)
    )
    return float(exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


# cohorts ---------------------------------------------------------------------------------------
# The cohort matrix of the rollups, corrected for the purchases past them: the members with such
# a purchase are taken out as the rollups count them and put back with those purchases added
# (what the job will do), all in one statement.
_COHORT_CELLS = """
    WITH tail AS ({tail}),
    tm AS (SELECT DISTINCT member_id, {tail_month} AS month FROM tail),
    old_m AS (SELECT DISTINCT pd.member_id, {day_month} AS month FROM purchase_days pd
               WHERE pd.member_id IN (SELECT member_id FROM tm)),
    old_c AS (SELECT member_id, {first_month} AS cohort FROM member_firsts
               WHERE scope = '' AND member_id IN (SELECT member_id FROM tm)),
    new_m AS (SELECT member_id, month FROM old_m UNION SELECT member_id, month FROM tm),
    new_c AS (SELECT member_id, MIN(month) AS cohort FROM new_m GROUP BY member_id),
    cells AS (
      SELECT cohort, month, members AS n FROM cohort_months
       WHERE cohort >= :first AND cohort <= :last AND month <= :last
      UNION ALL
      SELECT c.cohort, m.month, -1 FROM old_m m JOIN old_c c ON c.member_id = m.member_id
      UNION ALL
      SELECT c.cohort, m.month, 1 FROM new_m m JOIN new_c c ON c.member_id = m.member_id
    )
    SELECT cohort, month, SUM(n) FROM cells
     WHERE cohort >= :first AND cohort <= :last AND month <= :last
     GROUP BY cohort, month
"""


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _month_name(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def cohorts(session: Session, start: date, end: date) -> dict[str, Any]:
    """The monthly cohort matrix of metrics.md: per first-purchase month in [start, end], its size
    and, for k = 0 … the month of `end`, the share that bought in the k-th month after."""
    first_month, last_month = _month_index(start), _month_index(end)
    reporting_memory(session)
    dialect = rollups.dialect_of(session)
    sql = _COHORT_CELLS.format(
        tail=rollups.tail_sql(dialect),
        tail_month=rollups.month_sql("day", dialect),
        day_month=rollups.month_sql("pd.day", dialect),
        first_month=rollups.month_sql("first_day", dialect),
    )
    rows = session.execute(text(sql), {"first": first_month, "last": last_month}).all()
    counts: dict[int, dict[int, int]] = {}
    for c, m, n in rows:
        if int(n):
            counts.setdefault(int(c), {})[int(m) - int(c)] = int(n)
    out = []
    for c in sorted(counts):
        size = counts[c].get(0, 0)
        retention = [ratio(counts[c].get(k, 0), size, 4) for k in range(last_month - c + 1)]
        out.append({"cohort": _month_name(c), "size": size, "retention": retention})
    return {"start": start, "end": end, "cohorts": out, "definitions": "docs/metrics.md"}


# vouchers --------------------------------------------------------------------------------------
Z_95 = 1.959963984540054  # the 97.5th percentile of the standard normal


@dataclass(frozen=True)
class TwoProportions:
    """Treated x1 of n1 against control x2 of n2: the difference and its statistics."""

    difference: float
    ci_low: float
    ci_high: float
    z: float | None
    p_value: float | None


def two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> TwoProportions | None:
    """The two-proportion z-test: difference p1 − p2 with its 95% confidence interval (Wald,
    unpooled standard error) and z with its two-sided p-value (pooled standard error, the null
    hypothesis p1 = p2). None when a group is empty; z and p are None when the pooled proportion
    is 0 or 1 (no variation to test)."""
    if n1 == 0 or n2 == 0:
        return None
    p1, p2 = x1 / n1, x2 / n2
    diff = p1 - p2
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    pooled = (x1 + x2) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = diff / se0 if se0 > 0 else None
    p_value = math.erfc(abs(z) / math.sqrt(2)) if z is not None else None
    return TwoProportions(diff, diff - Z_95 * se, diff + Z_95 * se, z, p_value)


def _round(value: float | None, places: int = 4) -> float | None:
    if value is None:
        return None
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _bought_within_validity(alias: str) -> str:
    """SQL: whether the member of row `alias` bought within its [valid_from, valid_until)."""
    return f"""EXISTS (SELECT 1 FROM purchases p
                    WHERE p.member_id = {alias}.member_id
                      AND p.occurred_at >= {alias}.valid_from
                      AND p.occurred_at < {alias}.valid_until)"""


_PERIOD = (bindparam("begin", type_=UTCDateTime()), bindparam("stop", type_=UTCDateTime()))
_VOUCHERS_ISSUED = (
    text(
        f"""
    SELECT v.kind, v.campaign, v.status, v.created_at, v.valid_from, v.valid_until,
           (SELECT MIN(p.occurred_at) FROM purchases p
             WHERE p.member_id = v.member_id AND p.occurred_at > v.created_at) AS next_at,
           {_bought_within_validity("v")} AS in_window
      FROM vouchers v
     WHERE v.kind IN ({", ".join(f"'{k}'" for k in VOUCHER_KINDS)})  -- the (kind, created_at) index
       AND v.created_at >= :begin AND v.created_at < :stop
    """
    )
    .bindparams(*_PERIOD)
    .columns(created_at=UTCDateTime(), next_at=UTCDateTime())
)
_HOLDOUTS = text(
    f"""
    SELECT h.kind, h.campaign, {_bought_within_validity("h")} AS in_window
      FROM voucher_holdouts h
     WHERE h.created_at >= :begin AND h.created_at < :stop
    """
).bindparams(*_PERIOD)


def vouchers(session: Session, start: date, end: date) -> dict[str, Any]:
    """Per voucher kind, over the vouchers issued in [start, end] (docs/metrics.md, "Vouchers"):
    issued, redeemed, redemption rate, came back and the median days from issue to the next
    purchase; where the kind had a holdout in the period, treated against holdout: the share
    that bought within the voucher's validity, the uplift and its 95% confidence interval."""
    params = {"begin": midnight(start), "stop": midnight(end + timedelta(days=1))}
    issued: dict[str, list[Any]] = {k: [] for k in VOUCHER_KINDS}
    for row in session.execute(_VOUCHERS_ISSUED, params):
        issued[row.kind].append(row)
    control: dict[str, list[Any]] = {k: [] for k in VOUCHER_KINDS}
    for row in session.execute(_HOLDOUTS, params):
        control[row.kind].append(row)

    kinds = []
    for kind in VOUCHER_KINDS:
        rows = issued[kind]
        redeemed = sum(1 for r in rows if r.status == "used")
        days = [(r.next_at - r.created_at).total_seconds() / 86400 for r in rows if r.next_at]
        item: dict[str, Any] = {
            "kind": kind,
            "issued": len(rows),
            "redeemed": redeemed,
            "redemption_rate": ratio(redeemed, len(rows), 4),
            "came_back": len(days),
            "median_days_to_next_purchase": _round(statistics.median(days), 2) if days else None,
            "holdout": None,
        }
        held = control[kind]
        if held:
            campaigns = {h.campaign for h in held}
            treated = [r for r in rows if r.campaign in campaigns]
            xt = sum(1 for r in treated if r.in_window)
            xh = sum(1 for h in held if h.in_window)
            test = two_proportion_test(xt, len(treated), xh, len(held))
            item["holdout"] = {
                "campaigns": sorted(campaigns),
                "treated": len(treated),
                "treated_bought": xt,
                "treated_rate": ratio(xt, len(treated), 4),
                "holdout": len(held),
                "holdout_bought": xh,
                "holdout_rate": ratio(xh, len(held), 4),
                "uplift": _round(test.difference) if test else None,
                "ci_low": _round(test.ci_low) if test else None,
                "ci_high": _round(test.ci_high) if test else None,
                "z": _round(test.z) if test else None,
                "p_value": _round(test.p_value) if test else None,
            }
        kinds.append(item)
    return {"start": start, "end": end, "kinds": kinds, "definitions": "docs/metrics.md"}
