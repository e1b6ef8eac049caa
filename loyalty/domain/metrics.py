"""Retention metrics, computed in SQL to the definitions of docs/metrics.md (names as there).

All days are UTC calendar days, `start` and `end` inclusive: P = [start 00:00, end+1 00:00),
P₋ = the D days before start. Every purchase counts (a free one included); returns do not undo a
purchase and are reported separately, by when the return happened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Date, TextClause, bindparam, func, select, text
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
MICROSECONDS_A_DAY = 86_400_000_000


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


def _micros_sql(column: str, dialect: str) -> str:
    """SQL: a UTC timestamp (or a PostgreSQL interval) as integer microseconds, exact."""
    if dialect == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM {column}) * 1000000 AS BIGINT)"
    fraction = f"CAST(substr(substr({column}, 21) || '000000', 1, 6) AS INTEGER)"
    return f"(CAST(strftime('%s', {column}) AS INTEGER) * 1000000 + {fraction})"  # UTC text


def _bought_within_validity(alias: str) -> str:
    """SQL: whether the member of row `alias` bought within its [valid_from, valid_until)."""
    return f"""EXISTS (SELECT 1 FROM purchases p
                    WHERE p.member_id = {alias}.member_id
                      AND p.occurred_at >= {alias}.valid_from
                      AND p.occurred_at < {alias}.valid_until)"""


# Per voucher issued in P, one index probe: first_at, the member's first purchase from the
# earlier of the issue and valid_from. A voucher came back when its member bought after the issue
# (`wait` to the first such purchase), bought when within [valid_from, valid_until): first_at
# answers both, but for a first_at at or before the issue (the first purchase after it takes a
# second probe) or before valid_from (a purchase on a come-back voucher's day of issue, before it
# becomes valid: then whether one lies in the validity takes it). Treated when its campaign held
# members of its kind out in P. Counted per kind with the two middle waits (the same one when
# their number is odd); then per kind and campaign the holdout records of P, one probe each.
# OFFSET 0 keeps PostgreSQL from copying a probe into every expression that reads its result.
_VOUCHER_OUTCOMES = """
    SELECT i.kind, CASE WHEN i.status = 'used' THEN 1 ELSE 0 END AS used,
           CASE WHEN (i.kind, i.campaign) IN (SELECT h.kind, h.campaign FROM voucher_holdouts h
                                               WHERE h.created_at >= :begin
                                                 AND h.created_at < :stop)
                THEN 1 ELSE 0 END AS treated,
           CASE WHEN i.first_at > i.created_at THEN {wait_first}
                WHEN i.first_at IS NOT NULL THEN
                  (SELECT {wait_next} FROM purchases p
                    WHERE p.member_id = i.member_id AND p.occurred_at > i.created_at)
           END AS wait,
           CASE WHEN i.first_at IS NULL THEN 0
                WHEN i.first_at >= i.valid_from THEN
                  CASE WHEN i.first_at < i.valid_until THEN 1 ELSE 0 END
                WHEN {bought} THEN 1 ELSE 0
           END AS bought
      FROM (SELECT v.kind, v.campaign, v.status, v.member_id, v.created_at, v.valid_from,
                   v.valid_until,
                   (SELECT p.occurred_at FROM purchases p
                     WHERE p.member_id = v.member_id
                       AND p.occurred_at >= CASE WHEN v.valid_from < v.created_at
                                                 THEN v.valid_from ELSE v.created_at END
                     ORDER BY p.occurred_at LIMIT 1) AS first_at
              FROM vouchers v
             WHERE v.kind IN ({kinds})  -- the (kind, created_at) index
               AND v.created_at >= :begin AND v.created_at < :stop
            {fence}) i
    {fence}
"""
_VOUCHER_FIGURES = """
    SELECT 'issued' AS part, kind, NULL AS campaign, COUNT(*) AS n, SUM(used) AS a,
           COUNT(wait) AS b, SUM(treated) AS c, SUM(treated * bought) AS d,
           {lower} AS lower, {upper} AS upper
      FROM {outcomes}
     GROUP BY kind
    UNION ALL
    SELECT 'held', h.kind, h.campaign, COUNT(*), SUM(CASE WHEN {bought} THEN 1 ELSE 0 END),
           NULL, NULL, NULL, NULL, NULL
      FROM voucher_holdouts h
     WHERE h.created_at >= :begin AND h.created_at < :stop
     GROUP BY h.kind, h.campaign
"""
_PERIOD = (bindparam("begin", type_=UTCDateTime()), bindparam("stop", type_=UTCDateTime()))


def _voucher_figures_sql(dialect: str) -> TextClause:
    """The statement of `vouchers`, in the dialect's words. On PostgreSQL the waits are intervals
    and percentile_disc(0.5) takes the ⌈n/2⌉-th in ascending order (the lower middle one) and in
    descending order (the upper); SQLite ranks the waits (in µs) and takes ranks ⌊(n+1)/2⌋ and
    ⌊(n+2)/2⌋. Either way exact integers of µs come out."""
    if dialect == "postgresql":
        waits = ("i.first_at - i.created_at", "MIN(p.occurred_at) - i.created_at")
        middle = "percentile_disc(0.5) WITHIN GROUP (ORDER BY wait{})"
        lower, upper = (_micros_sql(middle.format(order), dialect) for order in ("", " DESC"))
        fence = "OFFSET 0"
    else:
        issue = _micros_sql("i.created_at", dialect)
        first, after = (_micros_sql(at, dialect) for at in ("i.first_at", "MIN(p.occurred_at)"))
        waits = (f"{first} - {issue}", f"{after} - {issue}")
        middle = "{}(CASE WHEN k IN ((waits + 1) / 2, (waits + 2) / 2) THEN wait END)"
        lower, upper = middle.format("MIN"), middle.format("MAX")
        fence = ""
    outcomes = _VOUCHER_OUTCOMES.format(
        wait_first=waits[0],
        wait_next=waits[1],
        bought=_bought_within_validity("i"),
        kinds=", ".join(f"'{k}'" for k in VOUCHER_KINDS),
        fence=fence,
    )
    if dialect != "postgresql":  # each wait's rank in its kind, the waits first
        outcomes = f"""(SELECT o.*, COUNT(wait) OVER (PARTITION BY kind) AS waits,
                   ROW_NUMBER() OVER (PARTITION BY kind ORDER BY wait IS NULL, wait) AS k
              FROM ({outcomes}) o)"""
    sql = _VOUCHER_FIGURES.format(
        outcomes=f"({outcomes}) o" if dialect == "postgresql" else f"{outcomes} o",
        lower=lower,
        upper=upper,
        bought=_bought_within_validity("h"),
    )
    return text(sql).bindparams(*_PERIOD)


@dataclass
class _KindCounts:
    """A kind's vouchers issued in P: issued, redeemed, came back, treated and treated that
    bought, and the two middle waits (µs); its holdout records per campaign: (records, bought)."""

    issued: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    middle: tuple[int, int] | None = None
    held: dict[str, tuple[int, int]] = field(default_factory=dict)


def _voucher_counts(session: Session, start: date, end: date) -> dict[str, _KindCounts]:
    """Per kind, the counts of the vouchers and holdout records created in [start, end], in one
    statement (one snapshot)."""
    params = {"begin": midnight(start), "stop": midnight(end + timedelta(days=1))}
    sql = _voucher_figures_sql(rollups.dialect_of(session))
    counts = {k: _KindCounts() for k in VOUCHER_KINDS}
    for part, kind, campaign, n, a, b, c, d, lower, upper in session.execute(sql, params):
        if part == "held":
            counts[kind].held[campaign] = (int(n), int(a))
            continue
        counts[kind].issued = (int(n), int(a), int(b), int(c), int(d))
        if lower is not None:
            counts[kind].middle = (int(lower), int(upper))
    return counts


def _holdout_figures(counts: _KindCounts) -> dict[str, Any]:
    """Treated against holdout for a kind with holdout records in P."""
    _, _, _, nt, xt = counts.issued
    nh, xh = (sum(h[i] for h in counts.held.values()) for i in (0, 1))
    test = two_proportion_test(xt, nt, xh, nh)
    return {
        "campaigns": sorted(counts.held),
        "treated": nt,
        "treated_bought": xt,
        "treated_rate": ratio(xt, nt, 4),
        "holdout": nh,
        "holdout_bought": xh,
        "holdout_rate": ratio(xh, nh, 4),
        "uplift": _round(test.difference) if test else None,
        "ci_low": _round(test.ci_low) if test else None,
        "ci_high": _round(test.ci_high) if test else None,
        "z": _round(test.z) if test else None,
        "p_value": _round(test.p_value) if test else None,
    }


def vouchers(session: Session, start: date, end: date) -> dict[str, Any]:
    """Per voucher kind, over the vouchers issued in [start, end] (docs/metrics.md, "Vouchers"):
    issued, redeemed, redemption rate, came back and the median days from issue to the next
    purchase; where the kind had a holdout in the period, treated against holdout: the share
    that bought within the voucher's validity, the uplift and its 95% confidence interval."""
    reporting_memory(session)
    kinds = []
    for kind, counts in _voucher_counts(session, start, end).items():
        issued, redeemed, came_back, _, _ = counts.issued
        middle = counts.middle  # the mean of the two, in days: exact, then rounded half-up
        kinds.append(
            {
                "kind": kind,
                "issued": issued,
                "redeemed": redeemed,
                "redemption_rate": ratio(redeemed, issued, 4),
                "came_back": came_back,
                "median_days_to_next_purchase": (
                    ratio(middle[0] + middle[1], 2 * MICROSECONDS_A_DAY, 2) if middle else None
                ),
                "holdout": _holdout_figures(counts) if counts.held else None,
            }
        )
    return {"start": start, "end": end, "kinds": kinds, "definitions": "docs/metrics.md"}
