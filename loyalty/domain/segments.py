"""Where each member stands today (metrics.md, "Segments"), in one SQL query.

Over the 365 days up to and including `as_of` (UTC days), each member with a purchase up to then
falls in the first segment whose rule matches: lost, at_risk, new, ambassador, deal_seeker, loyal,
occasional. Purchases and feedback after `as_of` are not seen.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, bindparam, text
from sqlalchemy.orm import Session

from loyalty.domain import rollups
from loyalty.domain.metrics import midnight, reporting_memory
from loyalty.models.types import UTCDateTime

SEGMENTS = ("lost", "at_risk", "new", "ambassador", "deal_seeker", "loyal", "occasional")
WINDOW_DAYS = 365
RECENT_DAYS = 90

# A purchase "used a voucher or a reward": one is linked to it, or names it by order_ref (the
# purchase's external_id, same member). The linked ones need no purchases scan; the order_ref
# ones are few and found through the member's purchases.
_BENEFIT = """
  SELECT used_purchase_id AS purchase_id FROM vouchers
   WHERE status = 'used' AND used_purchase_id IS NOT NULL
  UNION
  SELECT p.id FROM vouchers v
    JOIN purchases p ON p.member_id = v.member_id AND p.external_id = v.used_order_ref
   WHERE v.status = 'used' AND v.used_purchase_id IS NULL
  UNION
  SELECT purchase_id FROM redemptions WHERE status = 'redeemed' AND purchase_id IS NOT NULL
  UNION
  SELECT p.id FROM redemptions r
    JOIN purchases p ON p.member_id = r.member_id AND p.external_id = r.order_ref
   WHERE r.status = 'redeemed' AND r.purchase_id IS NULL
"""


def _latest(score: str, member_filter: str) -> str:
    """Each member's latest answer of `score` in the window."""
    return f"""
      SELECT member_id, {score} AS score FROM (
        SELECT member_id, {score},
               ROW_NUMBER() OVER (PARTITION BY member_id ORDER BY created_at DESC, id DESC) AS rn
          FROM feedback
         WHERE {score} IS NOT NULL AND created_at >= :window_start AND created_at < :end_at
               {member_filter}
      ) ranked WHERE rn = 1
    """


def _query(one_member: bool, dialect: str) -> Any:
    member_filter = "AND member_id = :member_id" if one_member else ""
    materialized = "MATERIALIZED" if dialect == "postgresql" else ""
    if dialect == "postgresql":
        lookup = f"""benefit b,
             LATERAL (SELECT member_id, occurred_at FROM purchases
                       WHERE id = b.purchase_id {member_filter} OFFSET 0) p"""
    else:  # SQLite has no LATERAL; its planner looks purchases up by id anyway
        lookup = "benefit b JOIN purchases p ON p.id = b.purchase_id" + (
            " AND p.member_id = :member_id" if one_member else ""
        )
    sql = f"""
    WITH pm AS (
      SELECT member_id,
             MIN(occurred_at) AS first_at,
             COUNT(*) FILTER (WHERE occurred_at >= :window_start) AS n_window,
             COUNT(*) FILTER (WHERE occurred_at >= :recent_start) AS n_recent
        FROM purchases
       WHERE occurred_at < :end_at {member_filter}
       GROUP BY member_id
    ),
    benefit AS {materialized} (
      SELECT purchase_id FROM ({_BENEFIT}) u ORDER BY purchase_id  -- lookups in heap order
    ),
    -- the few purchases with a benefit, looked up one by one (OFFSET 0 keeps it a lookup, not a
    -- second pass over all purchases)
    bm AS (
      SELECT p.member_id, COUNT(*) AS n_benefit
        FROM {lookup}
       WHERE p.occurred_at >= :window_start AND p.occurred_at < :end_at
       GROUP BY p.member_id
    ),
    nps AS ({_latest("nps", member_filter)}),
    ces AS ({_latest("ces", member_filter)})
    SELECT CASE
             WHEN pm.n_window = 0 THEN 'lost'
             WHEN nps.score <= 6 OR ces.score >= 5 OR pm.n_recent = 0 THEN 'at_risk'
             WHEN pm.first_at >= :recent_start THEN 'new'
             WHEN nps.score >= 9 AND pm.n_window >= 2 THEN 'ambassador'
             WHEN pm.n_window >= 2 AND 2 * COALESCE(bm.n_benefit, 0) >= pm.n_window
               THEN 'deal_seeker'
             WHEN pm.n_window >= 2 THEN 'loyal'
             ELSE 'occasional'
           END AS segment,
           COUNT(*) AS members
      FROM pm
      LEFT JOIN bm ON bm.member_id = pm.member_id
      LEFT JOIN nps ON nps.member_id = pm.member_id
      LEFT JOIN ces ON ces.member_id = pm.member_id
     GROUP BY 1
    """
    return text(sql).bindparams(
        bindparam("window_start", type_=UTCDateTime()),
        bindparam("recent_start", type_=UTCDateTime()),
        bindparam("end_at", type_=UTCDateTime()),
    )


# All members at once: the per-member counts from the rollups' days of the window and the
# purchases past them; "had purchases before" and "first purchase in the last 90 days" from the
# first purchase days. Members with no purchase in the window (lost) are counted, not listed.
_ALL = """
    WITH tail AS ({tail}),
    d AS (
      SELECT member_id, day, purchases AS n FROM purchase_days
       WHERE day >= :window_day AND day < :end_day
      UNION ALL
      SELECT member_id, day, 1 FROM tail WHERE day >= :window_day AND day < :end_day
    ),
    pm AS (
      SELECT member_id, SUM(n) AS n_window,
             SUM(CASE WHEN day >= :recent_day THEN n ELSE 0 END) AS n_recent
        FROM d GROUP BY member_id
    ),
    tf AS (SELECT member_id, MIN(day) AS first_day FROM tail GROUP BY member_id),
    new_members AS (
      SELECT c.member_id FROM (
        SELECT member_id FROM member_firsts
         WHERE scope = '' AND first_day >= :recent_day AND first_day < :end_day
        UNION
        SELECT member_id FROM tf WHERE first_day >= :recent_day AND first_day < :end_day
      ) c
      LEFT JOIN member_firsts f ON f.scope = '' AND f.member_id = c.member_id
      LEFT JOIN tf ON tf.member_id = c.member_id
      WHERE (f.first_day IS NULL OR f.first_day >= :recent_day)
        AND (tf.first_day IS NULL OR tf.first_day >= :recent_day)
    ),
    -- everyone with a purchase up to as_of
    counted AS (
      SELECT (SELECT COUNT(*) FROM member_firsts WHERE scope = '' AND first_day < :end_day)
           + (SELECT COUNT(*) FROM tf WHERE tf.first_day < :end_day AND NOT EXISTS (
                SELECT 1 FROM member_firsts f
                 WHERE f.scope = '' AND f.member_id = tf.member_id AND f.first_day < :end_day))
             AS n
    ),
    benefit AS {materialized} (
      SELECT purchase_id FROM ({benefit}) u ORDER BY purchase_id  -- lookups in heap order
    ),
    bm AS (
      SELECT p.member_id, COUNT(*) AS n_benefit
        FROM {lookup}
       WHERE p.occurred_at >= :window_start AND p.occurred_at < :end_at
       GROUP BY p.member_id
    ),
    nps AS ({nps}),
    ces AS ({ces})
    SELECT CASE
             WHEN nps.score <= 6 OR ces.score >= 5 OR pm.n_recent = 0 THEN 'at_risk'
             WHEN nm.member_id IS NOT NULL THEN 'new'
             WHEN nps.score >= 9 AND pm.n_window >= 2 THEN 'ambassador'
             WHEN pm.n_window >= 2 AND 2 * COALESCE(bm.n_benefit, 0) >= pm.n_window
               THEN 'deal_seeker'
             WHEN pm.n_window >= 2 THEN 'loyal'
             ELSE 'occasional'
           END AS segment,
           COUNT(*) AS members
      FROM pm
      LEFT JOIN new_members nm ON nm.member_id = pm.member_id
      LEFT JOIN bm ON bm.member_id = pm.member_id
      LEFT JOIN nps ON nps.member_id = pm.member_id
      LEFT JOIN ces ON ces.member_id = pm.member_id
     GROUP BY 1
    UNION ALL
    SELECT 'lost', (SELECT n FROM counted) - (SELECT COUNT(*) FROM pm)
"""


def _all_query(dialect: str) -> Any:
    if dialect == "postgresql":
        lookup = """benefit b,
             LATERAL (SELECT member_id, occurred_at FROM purchases
                       WHERE id = b.purchase_id OFFSET 0) p"""
    else:
        lookup = "benefit b JOIN purchases p ON p.id = b.purchase_id"
    sql = _ALL.format(
        tail=rollups.tail_sql(dialect),
        materialized="MATERIALIZED" if dialect == "postgresql" else "",
        benefit=_BENEFIT,
        lookup=lookup,
        nps=_latest("nps", ""),
        ces=_latest("ces", ""),
    )
    return text(sql).bindparams(
        bindparam("window_start", type_=UTCDateTime()),
        bindparam("end_at", type_=UTCDateTime()),
        *(bindparam(name, type_=Date()) for name in ("window_day", "recent_day", "end_day")),
    )


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _params(as_of: date) -> dict[str, Any]:
    end_at = midnight(as_of + timedelta(days=1))
    return {
        "end_day": as_of + timedelta(days=1),
        "window_day": as_of + timedelta(days=1 - WINDOW_DAYS),
        "recent_day": as_of + timedelta(days=1 - RECENT_DAYS),
        "end_at": end_at,
        "window_start": end_at - timedelta(days=WINDOW_DAYS),
        "recent_start": end_at - timedelta(days=RECENT_DAYS),
    }


def segment_counts(session: Session, as_of: date) -> dict[str, Any]:
    """Members per segment as of the end of `as_of`; members who never bought are not counted."""
    reporting_memory(session)
    rows = session.execute(_all_query(_dialect(session)), _params(as_of)).all()
    counts = dict.fromkeys(SEGMENTS, 0)
    for segment, members in rows:
        counts[segment] = int(members)
    return {
        "as_of": as_of,
        **counts,
        "segments": counts,
        "members": sum(counts.values()),
        "definitions": "docs/metrics.md",
    }


def segment_of(session: Session, member_id: int, as_of: date) -> str | None:
    """The member's segment as of `as_of`; None when they have no purchase up to then."""
    rows = session.execute(
        _query(True, _dialect(session)), {**_params(as_of), "member_id": member_id}
    ).all()
    return str(rows[0][0]) if rows else None
