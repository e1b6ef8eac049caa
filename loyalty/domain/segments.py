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
from loyalty.errors import MetricsCatchingUp
from loyalty.models.types import UTCDateTime

SEGMENTS = ("lost", "at_risk", "new", "ambassador", "deal_seeker", "loyal", "occasional")
WINDOW_DAYS = 365
RECENT_DAYS = 90


def _latest(score: str, member_filter: str, dialect: str) -> str:
    """Each member's latest answer of `score` in the window."""
    if dialect == "postgresql":
        return f"""
      SELECT DISTINCT ON (member_id) member_id, {score} AS score FROM feedback
       WHERE {score} IS NOT NULL AND created_at >= :window_start AND created_at < :end_at
             {member_filter}
       ORDER BY member_id, created_at DESC, id DESC
    """
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
      -- in heap order for the lookups
      SELECT purchase_id FROM ({rollups.BENEFIT_SQL}) u ORDER BY purchase_id
    ),
    -- the few purchases with a benefit, looked up one by one (OFFSET 0 keeps it a lookup, not a
    -- second pass over all purchases)
    bm AS (
      SELECT p.member_id, COUNT(*) AS n_benefit
        FROM {lookup}
       WHERE p.occurred_at >= :window_start AND p.occurred_at < :end_at
       GROUP BY p.member_id
    ),
    nps AS ({_latest("nps", member_filter, dialect)}),
    ces AS ({_latest("ces", member_filter, dialect)})
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


# All members at once. A member with no purchase on a later day than as_of and none past the
# rollups (every member, as of today) is read from member_spans: they made at least k purchases
# in the window when their k-th latest is in it (k = 1, 2), one in the last 90 days when the
# latest is, and are new when the first is. A deal seeker with b purchases that used a benefit in
# the window made at most 2b there: their k-th latest purchases mostly say whether they did
# (`_deal`); else their purchase days in the window are read back from the latest, at
# most 2b + 1 of them (more means more purchases than 2b). The other members (a purchase after
# as_of, or past the rollups) are counted from their purchase days in the window and the
# purchases past the rollups. The purchases that used a benefit: those benefit_purchases holds
# (member and day noted by the job) and those linked since its last run, looked up.
_ALL = """
    WITH tail AS ({tail}),
    tf AS (SELECT member_id, MIN(day) AS first_day FROM tail GROUP BY member_id),
    -- the purchase days in the window of the members counted, not spanned (from the tables: the
    -- planner then knows how many, none as of today)
    od AS (
      SELECT member_id, day, purchases AS n FROM purchase_days
       WHERE day >= :window_day AND day < :end_day
         AND member_id IN (SELECT member_id FROM member_spans WHERE last_day >= :end_day)
      UNION ALL
      SELECT d.member_id, d.day, d.purchases FROM purchase_days d
       WHERE d.day >= :window_day AND d.day < :end_day
         AND d.member_id IN (SELECT member_id FROM tf)
         AND NOT EXISTS (SELECT 1 FROM member_spans s
                          WHERE s.member_id = d.member_id AND s.last_day >= :end_day)
      UNION ALL
      SELECT member_id, day, 1 FROM tail WHERE day >= :window_day AND day < :end_day
    ),
    oc AS (
      SELECT member_id, SUM(n) AS n_window,
             SUM(CASE WHEN day >= :recent_day THEN n ELSE 0 END) AS n_recent
        FROM od GROUP BY member_id
    ),
    -- per member: the first day, the purchases in the window (exact, or NULL: then n_min says
    -- 0, 1 or at least 2, and the k-th latest days are there), one in the last 90 days
    pm AS (
      SELECT s.member_id, s.first_day, NULL AS n_window,
             CASE WHEN s.last2_day >= :window_day THEN 2
                  WHEN s.last_day >= :window_day THEN 1 ELSE 0 END AS n_min,
             CASE WHEN s.last_day >= :recent_day THEN 1 ELSE 0 END AS recent,
             {ranked_days}, {benefit_days}
        FROM member_spans s
       WHERE s.last_day < :end_day
         AND NOT EXISTS (SELECT 1 FROM tf WHERE tf.member_id = s.member_id)
      UNION ALL
      SELECT s.member_id, s.first_day, {counted}
        FROM member_spans s
        LEFT JOIN oc ON oc.member_id = s.member_id
       WHERE s.last_day >= :end_day AND s.first_day < :end_day
         AND NOT EXISTS (SELECT 1 FROM tf WHERE tf.member_id = s.member_id)
      UNION ALL
      SELECT tf.member_id,
             CASE WHEN s.first_day IS NULL OR tf.first_day < s.first_day THEN tf.first_day
                  ELSE s.first_day END,
             {counted}
        FROM tf
        LEFT JOIN member_spans s ON s.member_id = tf.member_id
        LEFT JOIN oc ON oc.member_id = tf.member_id
       WHERE s.first_day < :end_day OR tf.first_day < :end_day
    ),
    -- links made since the job's last run (links are only ever added)
    fresh AS (
      SELECT DISTINCT purchase_id FROM ({links}) l
       WHERE NOT EXISTS (SELECT 1 FROM benefit_purchases c WHERE c.purchase_id = l.purchase_id)
    ),
    -- their purchases in the window, per member (usually none)
    fm AS (
      SELECT p.member_id, COUNT(*) AS n_benefit FROM {lookup}
       WHERE p.day >= :window_day AND p.day < :end_day GROUP BY p.member_id
    ),
    -- the noted ones in the window of the members counted, not spanned (usually none)
    ob AS (
      SELECT c.member_id, COUNT(*) AS n_benefit
        FROM benefit_purchases c JOIN member_spans s ON s.member_id = c.member_id
       WHERE c.day >= :window_day AND c.day < :end_day AND s.last_day >= :end_day
       GROUP BY c.member_id
      UNION ALL
      SELECT c.member_id, COUNT(*) FROM benefit_purchases c
       WHERE c.day >= :window_day AND c.day < :end_day
         AND c.member_id IN (SELECT member_id FROM tf UNION SELECT member_id FROM fm)
         AND NOT EXISTS (SELECT 1 FROM member_spans s
                          WHERE s.member_id = c.member_id AND s.last_day >= :end_day)
       GROUP BY c.member_id
    ),
    {feedback},
    classified AS (
      SELECT CASE
               WHEN pm.n_min = 0 THEN 'lost'
               WHEN fb.nps <= 6 OR fb.ces >= 5 OR pm.recent = 0 THEN 'at_risk'
               WHEN pm.first_day >= :recent_day THEN 'new'
               WHEN fb.nps >= 9 AND pm.n_min >= 2 THEN 'ambassador'
               WHEN pm.n_min >= 2 AND {deal}
                 THEN 'deal_seeker'
               WHEN pm.n_min >= 2 THEN 'loyal'
               ELSE 'occasional'
             END AS segment
        FROM pm
        LEFT JOIN fm ON fm.member_id = pm.member_id
        LEFT JOIN ob ON ob.member_id = pm.member_id
        LEFT JOIN fb ON fb.member_id = pm.member_id
    )
    SELECT segment, COUNT(*) FROM classified GROUP BY segment
"""


def _deal(dialect: str) -> str:
    """SQL (a condition on pm, fm): whether the member, who made at least two purchases in the
    window, made at most twice as many there as purchases that used a benefit (b). Counted for a
    member counted from the purchases (n_window) or with a link made since the job's last run
    (fm); else their benefit and purchase days mostly tell: b < j when the j-th latest benefit
    day is before the window, b >= j and no more than 2j purchases when it is not and the
    (2j + 1)-th latest purchase is before it: yes; b < j and 2j - 1 purchases or more: no. Where
    they do not (a few members), counted."""

    def exact(b: str) -> str:
        limit = f" LIMIT 2 * {b} + 1" if dialect == "postgresql" else ""  # rows of >= 1 purchase
        return f"""2 * {b} >= COALESCE(pm.n_window, (
                SELECT SUM(n) FROM (
                  SELECT d.purchases AS n FROM purchase_days d
                   WHERE d.member_id = pm.member_id AND d.day >= :window_day
                     AND d.day < :end_day
                   ORDER BY d.day DESC{limit}) l))"""

    before = "COALESCE(pm.{} < :window_day, 1 = 1)"  # not in the window (or none)
    known = exact("(COALESCE(ob.n_benefit, 0) + COALESCE(fm.n_benefit, 0))")
    arms = [f"WHEN pm.n_window IS NOT NULL OR fm.member_id IS NOT NULL THEN {known}"]
    counted = exact(  # a member spanned, with no link since the last run
        """(SELECT COUNT(*) FROM benefit_purchases c
              WHERE c.member_id = pm.member_id AND c.day >= :window_day AND c.day < :end_day)"""
    )
    at_least = 0  # b >= this, known when the next arm is reached
    for j in rollups.BENEFIT_RANKS:
        if j == 1:
            fewer = "1 = 0"  # no benefit
        else:
            k = min(k for k in rollups.SPAN_RANKS if k >= 2 * j - 1)
            fewer = f"""CASE WHEN pm.last{k}_day >= :window_day THEN 1 = 0
                     WHEN {before.format(f"last{2 * at_least + 1}_day")} THEN 1 = 1
                     ELSE {counted} END"""
        arms.append(f"WHEN {before.format(f'benefit{j}_day')} THEN {fewer}")
        arms.append(f"WHEN {before.format(f'last{2 * j + 1}_day')} THEN 1 = 1")
        at_least = j
    arms.append(f"ELSE {counted}")
    return "CASE " + "\n                 ".join(arms) + " END"


def _feedback(dialect: str) -> str:
    """SQL (CTEs, the last `fb`): each member's latest NPS and CES in the window, one row per
    member with either."""
    both = (  # SQLite before 3.39 has no FULL JOIN
        "nps n FULL JOIN ces c ON c.member_id = n.member_id"
        if dialect == "postgresql"
        else """(SELECT member_id FROM nps UNION SELECT member_id FROM ces) m
        LEFT JOIN nps n ON n.member_id = m.member_id
        LEFT JOIN ces c ON c.member_id = m.member_id"""
    )
    return f"""nps AS ({_latest("nps", "", dialect)}),
    ces AS ({_latest("ces", "", dialect)}),
    fb AS (
      SELECT COALESCE(n.member_id, c.member_id) AS member_id, n.score AS nps, c.score AS ces
        FROM {both}
    )"""


# pm's columns for a member counted from oc, not spanned
_COUNTED = """COALESCE(oc.n_window, 0),
             CASE WHEN oc.n_window >= 2 THEN 2 ELSE COALESCE(oc.n_window, 0) END,
             CASE WHEN oc.n_recent > 0 THEN 1 ELSE 0 END,
             {no_days}"""


def _all_query(dialect: str) -> Any:
    day = rollups.day_sql("occurred_at", dialect)
    if dialect == "postgresql":
        lookup = f"""fresh f, LATERAL (SELECT member_id, {day} AS day FROM purchases
                                 WHERE id = f.purchase_id OFFSET 0) p"""
    else:
        lookup = f"""fresh f
             JOIN (SELECT id, member_id, {day} AS day FROM purchases) p ON p.id = f.purchase_id"""
    sql = _ALL.format(
        tail=rollups.tail_sql(dialect),
        materialized="MATERIALIZED" if dialect == "postgresql" else "",
        links=rollups.BENEFIT_LINKS_SQL,
        lookup=lookup,
        ranked_days=", ".join(f"s.last{k}_day" for k in rollups.SPAN_RANKS[1:]),
        benefit_days=", ".join(f"s.{c}" for c in rollups.BENEFIT_COLUMNS),
        counted=_COUNTED.format(
            no_days=", ".join("NULL" for _ in rollups.SPAN_RANKS[1:] + rollups.BENEFIT_RANKS)
        ),
        deal=_deal(dialect),
        feedback=_feedback(dialect),
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
    """Members per segment as of the end of `as_of`; members who never bought are not counted.
    Raises MetricsCatchingUp while the spans are behind the rollups (during an upgrade)."""
    if not rollups.spans_current(session):
        raise MetricsCatchingUp("The job makes the member spans again at its next run.")
    reporting_memory(session)
    counts = dict.fromkeys(SEGMENTS, 0)
    for segment, members in session.execute(_all_query(_dialect(session)), _params(as_of)):
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
