"""The metrics rollups (loyalty.models.metrics): kept from the purchases by a job, read with the
purchases the job has not reached yet, so that every figure is exact whenever it is asked.

- `purchase_days`: per UTC day, member and store, the number of purchases and their amount;
- `member_firsts`: each member's first purchase day, ever (scope '') and per store;
- `cohort_months`: per cohort (month of the first purchase) and month, the members who bought;
- `member_spans`: the days of each member's first and latest purchases, of the k-th latest
  (`SPAN_RANKS`), and of the j-th latest that used a benefit as `benefit_purchases` holds them
  (`BENEFIT_RANKS`);
- `benefit_purchases`: the member and day of each purchase that used a voucher or a reward
  (`BENEFIT_SQL`) as of the job's last run. Links are only ever added (a voucher is used once,
  a redemption redeemed once, neither undone; a purchase named by order_ref may come later), so
  the purchases that used a benefit are those it holds plus those `BENEFIT_LINKS_SQL` gives now
  that it does not hold yet: a link made after the run counts at once (`check` would show a
  link that went).

They hold exactly the purchases with id <= the watermark of `rollup_state`, less the id ranges of
`rollup_gaps`. `tail_sql` is the rest (the purchases past the watermark or in a gap), read raw in
the same statement as the rollups, so the two never overlap or miss a purchase whatever the job
does meanwhile. Purchases are never deleted and never change member, time, amount or store
(returns are reported from `returns`, erasure keeps the purchases), so adding is all it takes.

A gap: ids are drawn from a sequence before their transaction commits, so a purchase with a lower
id may become visible after one with a higher id. The job notes the ids it did not see below the
highest it took and takes them when they appear. On PostgreSQL a gap is dropped only once no
transaction that could still write one of its ids is running (`Clock.keeps`: the snapshot's xmin
has passed the xmax noted with the gap, and no transaction begun before the gap was noted is
open), however long that takes; its ids were rolled back or burnt by ON CONFLICT. SQLite has one
writer, so a gap there never fills; it is dropped after GAP_SECONDS. A dropped gap is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from loyalty.models.types import utcnow

log = logging.getLogger(__name__)

STATE = "metrics"
#: the rollup tables
TABLES = (
    "purchase_days",
    "purchase_links",
    "member_firsts",
    "cohort_months",
    "member_spans",
    "benefit_purchases",
)
#: purchases a job transaction rolls up at most
BATCH = 100_000
#: SQLite: how long an id not yet visible below the watermark is waited for
GAP_SECONDS = 900


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


def day_sql(column: str, dialect: str) -> str:
    """SQL: the UTC day of a timestamp column, comparable with the rollups' DATE columns."""
    if dialect == "postgresql":
        return f"({column} AT TIME ZONE 'UTC')::date"
    return f"substr({column}, 1, 10)"  # stored as UTC text, 'YYYY-MM-DD HH:MM:SS'


def month_sql(column: str, dialect: str) -> str:
    """SQL: the month number (year × 12 + month − 1) of a DATE column."""
    if dialect == "postgresql":
        return f"(EXTRACT(YEAR FROM {column})::int * 12 + EXTRACT(MONTH FROM {column})::int - 1)"
    year, month = f"substr({column}, 1, 4)", f"substr({column}, 6, 2)"
    return f"(CAST({year} AS INTEGER) * 12 + CAST({month} AS INTEGER) - 1)"


def store_key(store_id: str) -> str:
    """The rollups' key of a store (purchase_days.store, member_firsts.scope)."""
    return "s:" + store_id


_STORE = "CASE WHEN p.store_id IS NULL THEN '' ELSE 's:' || p.store_id END"


def tail_sql(dialect: str) -> str:
    """SQL (a CTE body): the purchases the rollups do not hold, as (member_id, day, amount,
    store). Evaluated in the caller's statement, with the rollups it is combined with."""
    cols = f"p.member_id, {day_sql('p.occurred_at', dialect)} AS day, p.amount, {_STORE} AS store"
    return f"""
      SELECT {cols} FROM purchases p
       WHERE p.id > COALESCE((SELECT watermark FROM rollup_state WHERE name = '{STATE}'), 0)
      UNION ALL
      SELECT {cols} FROM rollup_gaps g JOIN purchases p ON p.id BETWEEN g.lo AND g.hi
    """


# A purchase "used a voucher or a reward" (docs/metrics.md, "Segments response"): one is linked
# to it, or names it by order_ref (the purchase's external_id, same member). The linked ones need
# no purchases scan; the order_ref ones are few and found through the member's purchases. One row
# per link: a purchase with two appears twice.
BENEFIT_LINKS_SQL = """
  SELECT used_purchase_id AS purchase_id FROM vouchers
   WHERE status = 'used' AND used_purchase_id IS NOT NULL
  UNION ALL
  SELECT p.id FROM vouchers v
    JOIN purchases p ON p.member_id = v.member_id AND p.external_id = v.used_order_ref
   WHERE v.status = 'used' AND v.used_purchase_id IS NULL
  UNION ALL
  SELECT purchase_id FROM redemptions WHERE status = 'redeemed' AND purchase_id IS NOT NULL
  UNION ALL
  SELECT p.id FROM redemptions r
    JOIN purchases p ON p.member_id = r.member_id AND p.external_id = r.order_ref
   WHERE r.status = 'redeemed' AND r.purchase_id IS NULL
"""
#: the purchases that used a voucher or a reward, once each
BENEFIT_SQL = f"SELECT DISTINCT purchase_id FROM ({BENEFIT_LINKS_SQL}) l"


#: member_spans.last{k}_day: the day of the member's k-th latest purchase, for these k
SPAN_RANKS = (2, 3, 5, 7, 9, 17, 33, 65)
SPAN_COLUMNS = ("first_day", "last_day", *(f"last{k}_day" for k in SPAN_RANKS))
#: member_spans.benefit{j}_day: the day of the member's j-th latest purchase that used a benefit
#: as benefit_purchases holds them, for these j (2j + 1 is one of SPAN_RANKS)
BENEFIT_RANKS = (1, 2, 3, 4, 8, 16, 32)
BENEFIT_COLUMNS = tuple(f"benefit{j}_day" for j in BENEFIT_RANKS)


def spans_sql(member_days: str) -> str:
    """SQL: the member_spans rows (member_id, *SPAN_COLUMNS) of `member_days` (a query of
    (member_id, day, n): each member's days and their purchases, all of them). The k-th latest
    purchase is on the latest day by which, counting back from the latest, k were made."""
    ranks = ",".join(
        f"\n             MAX(CASE WHEN since >= {k} THEN day END) AS last{k}_day"
        for k in SPAN_RANKS
    )
    return f"""
      SELECT member_id, MIN(day) AS first_day, MAX(day) AS last_day,{ranks}
        FROM (SELECT member_id, day,
                     SUM(n) OVER (PARTITION BY member_id ORDER BY day DESC
                                  ROWS UNBOUNDED PRECEDING) AS since
                FROM ({member_days}) d) r
       GROUP BY member_id
    """


def benefit_spans_sql(member_filter: str) -> str:
    """SQL: (member_id, *BENEFIT_COLUMNS) from the benefit_purchases rows that `member_filter`
    (an SQL condition on them) lets through."""
    ranks = ", ".join(
        f"MAX(CASE WHEN rk >= {j} THEN day END) AS benefit{j}_day" for j in BENEFIT_RANKS
    )
    return f"""
      SELECT member_id, {ranks}
        FROM (SELECT member_id, day,
                     ROW_NUMBER() OVER (PARTITION BY member_id ORDER BY day DESC) AS rk
                FROM benefit_purchases WHERE {member_filter}) r
       GROUP BY member_id
    """


def _set_benefit_spans(session: Session, member_filter: str) -> None:
    """member_spans' benefit days made again for the members `member_filter` (an SQL condition
    on benefit_purchases) lets through (a member without a span yet gets them with it)."""
    session.execute(
        text(
            f"""
            UPDATE member_spans
               SET {", ".join(f"{c} = b.{c}" for c in BENEFIT_COLUMNS)}
              FROM ({benefit_spans_sql(member_filter)}) b
             WHERE member_spans.member_id = b.member_id
            """
        )
    )


def benefits_sql(dialect: str) -> str:
    """SQL: the purchases that used a benefit, as benefit_purchases rows (purchase_id,
    member_id, day)."""
    return f"""
      SELECT p.id AS purchase_id, p.member_id, {day_sql("p.occurred_at", dialect)} AS day
        FROM ({BENEFIT_SQL}) b JOIN purchases p ON p.id = b.purchase_id
    """


# the job ---------------------------------------------------------------------------------------
def _open_batch(session: Session, dialect: str) -> None:
    if dialect == "postgresql":
        session.execute(
            text(
                "CREATE TEMP TABLE rollup_batch (id bigint, member_id bigint, day date, "
                "amount bigint, store text) ON COMMIT DROP"
            )
        )
    else:
        session.execute(text("DROP TABLE IF EXISTS temp.rollup_batch"))
        session.execute(
            text(
                "CREATE TEMP TABLE rollup_batch (id INTEGER, member_id INTEGER, day TEXT, "
                "amount INTEGER, store TEXT)"
            )
        )


def _close_batch(session: Session, dialect: str) -> None:
    if dialect != "postgresql":  # PostgreSQL drops it at commit
        session.execute(text("DROP TABLE IF EXISTS temp.rollup_batch"))


def _load_batch(session: Session, dialect: str, watermark: int, limit: int | None) -> None:
    """The purchases past the watermark (the first `limit` by id) and those now visible in a
    gap, into rollup_batch: one statement, one snapshot."""
    cols = f"p.id, p.member_id, {day_sql('p.occurred_at', dialect)}, p.amount, {_STORE}"
    newer = f"SELECT {cols} FROM purchases p WHERE p.id > :watermark ORDER BY p.id"
    if limit is not None:
        newer += f" LIMIT {int(limit)}"
    session.execute(
        text(
            f"""
            INSERT INTO rollup_batch (id, member_id, day, amount, store)
            SELECT * FROM ({newer}) n
            UNION ALL
            SELECT {cols} FROM rollup_gaps g JOIN purchases p ON p.id BETWEEN g.lo AND g.hi
            """
        ),
        {"watermark": watermark},
    )
    if dialect == "postgresql":
        session.execute(text("ANALYZE rollup_batch"))


def _cohort_delta(session: Session, dialect: str, sign: int) -> None:
    """Add (sign 1) or take away (sign -1) the cohort_months cells of the batch's members as the
    rollups now hold them: each (member, month bought) counted in the member's cohort."""
    session.execute(
        text(
            f"""
            INSERT INTO cohort_months (cohort, month, members)
            SELECT {month_sql("f.first_day", dialect)}, d.month, {int(sign)} * COUNT(*)
              FROM (SELECT DISTINCT pd.member_id, {month_sql("pd.day", dialect)} AS month
                      FROM purchase_days pd
                     WHERE pd.member_id IN (SELECT member_id FROM rollup_batch)) d
              JOIN member_firsts f ON f.scope = '' AND f.member_id = d.member_id
             WHERE true
             GROUP BY 1, 2
            ON CONFLICT (cohort, month) DO UPDATE
               SET members = cohort_months.members + excluded.members
            """
        )
    )


#: prev_day of a purchase with no purchase before it (sorts before every real day)
NO_DAY = date(1, 1, 1)


def links_sql(source: str) -> str:
    """SQL (CTE bodies `ch`, then `links`): the purchase_links cells made by the member-days of
    `source` (a CTE of (scope, member_id, day, n, rev): each scope's member-days, whole
    histories). A member-day of n purchases, after the member-days p1 (day d1, n1 purchases) and
    p2 (day d2): kind 1, its first purchase follows d1 and the n − 1 others the same day; kind 2,
    its first purchase comes two after d1 if p1 had two, else after d2; its second after d1; the
    others after the same day."""
    none = f"'{NO_DAY.isoformat()}'"
    return f"""
    ch AS (
      SELECT scope, day, n, rev,
             LAG(day) OVER w AS d1, LAG(n) OVER w AS n1, LAG(day, 2) OVER w AS d2
        FROM {source}
      WINDOW w AS (PARTITION BY scope, member_id ORDER BY day)
    ),
    links AS (
      SELECT scope, day, 1 AS kind, COALESCE(d1, {none}) AS prev_day, 1 AS n, rev FROM ch
      UNION ALL
      SELECT scope, day, 1, day, n - 1, 0 FROM ch WHERE n >= 2
      UNION ALL
      SELECT scope, day, 2, COALESCE(CASE WHEN n1 >= 2 THEN d1 ELSE d2 END, {none}), 1, 0 FROM ch
      UNION ALL
      SELECT scope, day, 2, COALESCE(d1, {none}), 1, 0 FROM ch WHERE n >= 2
      UNION ALL
      SELECT scope, day, 2, day, n - 2, 0 FROM ch WHERE n >= 3
    )
    """


def days_sql(member_filter: str, scope: str | None = None) -> str:
    """SQL: the member-days of purchase_days as (scope, member_id, day, n, rev) of the members
    `member_filter` (an SQL condition on pd) lets through: for all stores (scope '') and each
    store, or only for `scope` (an SQL expression) when given."""
    everywhere, at_stores = (
        ("true", "pd.store <> ''")
        if scope is None
        # a store's rows only for a store's scope: purchases without a store (store '') are in
        # the all-stores rows already
        else (f"{scope} = ''", f"{scope} <> '' AND pd.store = {scope}")
    )
    return f"""
      SELECT '' AS scope, pd.member_id, pd.day, SUM(pd.purchases) AS n, SUM(pd.revenue) AS rev
        FROM purchase_days pd WHERE {member_filter} AND {everywhere}
       GROUP BY pd.member_id, pd.day
      UNION ALL
      SELECT pd.store, pd.member_id, pd.day, pd.purchases, pd.revenue
        FROM purchase_days pd WHERE {member_filter} AND {at_stores}
    """


def _links_delta(session: Session, sign: int) -> None:
    """Add (sign 1) or take away (sign -1) the purchase_links cells of the batch's members as
    purchase_days now has them."""
    session.execute(
        text(
            f"""
            WITH src AS ({days_sql("pd.member_id IN (SELECT member_id FROM rollup_batch)")}),
            {links_sql("src")}
            INSERT INTO purchase_links (scope, day, kind, prev_day, purchases, revenue)
            SELECT scope, day, kind, prev_day, {int(sign)} * SUM(n), {int(sign)} * SUM(rev)
              FROM links WHERE n <> 0
             GROUP BY scope, day, kind, prev_day
            ON CONFLICT (scope, day, kind, prev_day) DO UPDATE
               SET purchases = purchase_links.purchases + excluded.purchases,
                   revenue = purchase_links.revenue + excluded.revenue
            """
        )
    )


_ADD_DAYS = text(
    """
    INSERT INTO purchase_days (day, member_id, store, purchases, revenue)
    SELECT day, member_id, store, COUNT(*), SUM(amount) FROM rollup_batch WHERE true
     GROUP BY day, member_id, store
    ON CONFLICT (day, member_id, store) DO UPDATE
       SET purchases = purchase_days.purchases + excluded.purchases,
           revenue = purchase_days.revenue + excluded.revenue
    """
)
_ADD_FIRSTS = text(
    """
    INSERT INTO member_firsts (scope, member_id, first_day)
    SELECT scope, member_id, first_day FROM (
      SELECT '' AS scope, member_id, MIN(day) AS first_day FROM rollup_batch GROUP BY member_id
      UNION ALL
      SELECT store, member_id, MIN(day) FROM rollup_batch WHERE store <> ''
       GROUP BY store, member_id
    ) f WHERE true
    ON CONFLICT (scope, member_id) DO UPDATE
       SET first_day = CASE WHEN excluded.first_day < member_firsts.first_day
                            THEN excluded.first_day ELSE member_firsts.first_day END
    """
)


def _member_days(where: str) -> str:
    """SQL: (member_id, day, n) of the purchase_days rows `where` lets through, all stores."""
    return (
        f"SELECT member_id, day, SUM(purchases) AS n FROM purchase_days WHERE {where} "
        "GROUP BY member_id, day"
    )


_BATCH_DAYS = _member_days("member_id IN (SELECT member_id FROM rollup_batch)")
_ALL_DAYS = _member_days("true")
_SET_SPANS = text(
    f"""
    INSERT INTO member_spans (member_id, {", ".join(SPAN_COLUMNS)})
    SELECT * FROM ({spans_sql(_BATCH_DAYS)}) s WHERE true
    ON CONFLICT (member_id) DO UPDATE
       SET {", ".join(f"{c} = excluded.{c}" for c in SPAN_COLUMNS)}
    """
)


def _note_benefits(session: Session, dialect: str) -> None:
    """The purchases that used a benefit and are not in benefit_purchases yet, into it. The new
    ones are listed first: an INSERT that read its own table for them would rescan the pages it
    writes, row after row."""
    temp = "benefit_new" if dialect == "postgresql" else "temp.benefit_new"
    if dialect == "postgresql":
        session.execute(text("CREATE TEMP TABLE benefit_new (purchase_id bigint) ON COMMIT DROP"))
    else:
        session.execute(text(f"DROP TABLE IF EXISTS {temp}"))
        session.execute(text("CREATE TEMP TABLE benefit_new (purchase_id INTEGER)"))
    session.execute(
        text(
            f"""
            INSERT INTO {temp} (purchase_id)
            SELECT purchase_id FROM ({BENEFIT_SQL}) b
             WHERE NOT EXISTS (SELECT 1 FROM benefit_purchases c
                                WHERE c.purchase_id = b.purchase_id)
            """
        )
    )
    if dialect == "postgresql":
        session.execute(text("ANALYZE benefit_new"))
    session.execute(
        text(
            f"""
            INSERT INTO benefit_purchases (purchase_id, member_id, day)
            SELECT p.id, p.member_id, {day_sql("p.occurred_at", dialect)}
              FROM {temp} n JOIN purchases p ON p.id = n.purchase_id
            """
        )
    )
    _set_benefit_spans(
        session,
        f"member_id IN (SELECT member_id FROM benefit_purchases WHERE purchase_id IN "
        f"(SELECT purchase_id FROM {temp}))",
    )
    if dialect != "postgresql":  # PostgreSQL drops it at commit
        session.execute(text(f"DROP TABLE {temp}"))


def spans_current(session: Session) -> bool:
    """Whether member_spans hold what the other rollups hold: the job that last moved the state
    also made the spans (`spans_at` = `updated_at`). Not so when a job of a release before
    migration 0021 (which knows no spans) ran after it, during an upgrade; the next run of
    this one makes them again. No state row: nothing rolled up, nothing to hold."""
    row = session.execute(
        text(f"SELECT updated_at, spans_at FROM rollup_state WHERE name = '{STATE}'")
    ).first()
    return row is None or (row[1] is not None and _aware(row[1]) == _aware(row[0]))


def _rebuild_spans(session: Session) -> None:
    """member_spans made again for every member, from purchase_days and benefit_purchases."""
    session.execute(text("DELETE FROM member_spans"))
    session.execute(
        text(
            f"""
            INSERT INTO member_spans (member_id, {", ".join(SPAN_COLUMNS)})
            SELECT * FROM ({spans_sql(_ALL_DAYS)}) s
            """
        )
    )
    _set_benefit_spans(session, "true")


def _apply_batch(session: Session, dialect: str) -> None:
    """rollup_batch into the rollups: the cohorts of its members taken out as they were, its
    days and first days added, the spans of its members made again, the cohorts of its members
    put back as they are now (a back-dated purchase moves a member to an earlier cohort with all
    their months)."""
    _cohort_delta(session, dialect, -1)
    _links_delta(session, -1)
    session.execute(_ADD_DAYS)
    session.execute(_ADD_FIRSTS)
    session.execute(_SET_SPANS)
    _set_benefit_spans(session, "member_id IN (SELECT member_id FROM rollup_batch)")
    _cohort_delta(session, dialect, 1)
    _links_delta(session, 1)
    session.execute(text("DELETE FROM cohort_months WHERE members = 0"))
    session.execute(text("DELETE FROM purchase_links WHERE purchases = 0 AND revenue = 0"))


@dataclass(frozen=True)
class Gap:
    lo: int
    hi: int
    noted_at: datetime
    #: PostgreSQL: pg_snapshot_xmax when noted (every transaction that could fill it is below)
    horizon: int | None = None


@dataclass(frozen=True)
class Clock:
    """What decides whether a gap may go. PostgreSQL: `now` is the server's clock, `xmin` the
    oldest other transaction still running on this database (from pg_snapshot_xip, this one
    left out; those of the cluster's other databases cannot fill a gap), `horizon` the
    next transaction id (pg_snapshot_xmax), `oldest` the start of the oldest other transaction
    open on this database (None: none). SQLite: `now` only."""

    now: datetime
    xmin: int | None = None
    horizon: int | None = None
    oldest: datetime | None = None

    def keeps(self, gap: Gap) -> bool:
        """Whether `gap` may still fill. PostgreSQL: an id in it was drawn before the gap was
        noted, by a transaction begun before then, so the gap stays while such a transaction
        runs: one with an id below the gap's horizon (xmin has not passed it), or one begun
        before the gap was noted (a transaction that has drawn an id may have no id of its own
        yet). SQLite has one writer: a gap can only stay empty; it goes after GAP_SECONDS."""
        if self.xmin is None:
            return gap.noted_at >= self.now - timedelta(seconds=GAP_SECONDS)
        if gap.horizon is not None and self.xmin < gap.horizon:
            return True
        return self.oldest is not None and self.oldest <= gap.noted_at


_CLOCK = text(
    """
    SELECT clock_timestamp(),
           COALESCE((SELECT MIN(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) x
                      -- this database's: another database's cannot write our purchases
                      WHERE x::text::bigint % 4294967296 IN (
                        SELECT backend_xid::text::bigint FROM pg_stat_activity
                         WHERE datname = current_database() AND backend_xid IS NOT NULL)),
                    pg_snapshot_xmax(pg_current_snapshot())::text::bigint),
           pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
           (SELECT MIN(xact_start) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND backend_type = 'client backend')
    """
)


def _clock(session: Session, dialect: str, now: datetime | None) -> Clock:
    """The Clock, read after the batch was loaded (later than its snapshot)."""
    if dialect != "postgresql":
        return Clock(now or utcnow())
    at, xmin, horizon, oldest = session.execute(_CLOCK).one()
    return Clock(_aware(at), int(xmin), int(horizon), _aware(oldest) if oldest else None)


def _holes(ids: list[int], lo: int, hi: int, clock: Clock | Gap) -> list[Gap]:
    """The ranges of [lo, hi] that `ids` (sorted) leave out, noted now (a Clock) or as before
    (the Gap they are part of)."""
    noted_at = clock.now if isinstance(clock, Clock) else clock.noted_at
    out, expected = [], lo
    for i in ids:
        if i < lo or i > hi:
            continue
        if i > expected:
            out.append(Gap(expected, i - 1, noted_at, clock.horizon))
        expected = i + 1
    if expected <= hi:
        out.append(Gap(expected, hi, noted_at, clock.horizon))
    return out


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite, text() without a type
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _lock_state(
    session: Session, dialect: str, *, wait: bool = True
) -> tuple[int, list[Gap]] | None:
    """The watermark and the gaps, the state row locked for this transaction; None when another
    transaction holds it and `wait` is false (PostgreSQL: SKIP LOCKED)."""
    lock = (" FOR UPDATE" if wait else " FOR UPDATE SKIP LOCKED") if dialect == "postgresql" else ""
    row = session.execute(
        text(f"SELECT watermark FROM rollup_state WHERE name = '{STATE}'{lock}")
    ).first()
    if row is None:
        exists = session.execute(text(f"SELECT 1 FROM rollup_state WHERE name = '{STATE}'")).first()
        if exists is not None:  # skipped: another run holds it
            return None
        # the migration writes the row; a cleared database has none
        session.execute(
            text(
                "INSERT INTO rollup_state (name, watermark, updated_at, spans_at)"
                " VALUES (:n, 0, :now, :now)"
            ),
            {"n": STATE, "now": utcnow()},
        )
    gaps = [
        Gap(int(lo), int(hi), _aware(at), None if horizon is None else int(horizon))
        for lo, hi, at, horizon in session.execute(
            text("SELECT lo, hi, noted_at, horizon FROM rollup_gaps ORDER BY lo")
        )
    ]
    return (int(row[0]) if row else 0), gaps


def _save_state(session: Session, watermark: int, gaps: list[Gap], now: datetime) -> None:
    session.execute(
        text(
            "UPDATE rollup_state SET watermark = :w, updated_at = :now, spans_at = :now"
            f" WHERE name = '{STATE}'"
        ),
        {"w": watermark, "now": now},
    )
    session.execute(text("DELETE FROM rollup_gaps"))
    if gaps:
        session.execute(
            text("INSERT INTO rollup_gaps (lo, hi, noted_at, horizon) VALUES (:lo, :hi, :at, :h)"),
            [{"lo": g.lo, "hi": g.hi, "at": g.noted_at, "h": g.horizon} for g in gaps],
        )


def _still_open(gaps: list[Gap], clock: Clock) -> list[Gap]:
    """The gaps that may still fill; a warning for each one dropped (its ids never came: rolled
    back, burnt by ON CONFLICT, or, past GAP_SECONDS on SQLite, lost to the rollups)."""
    kept = []
    for gap in gaps:
        if clock.keeps(gap):
            kept.append(gap)
        else:
            log.warning(
                "metrics rollups: purchase ids %s..%s never appeared (noted %s); gap dropped",
                gap.lo, gap.hi, gap.noted_at.isoformat(),
            )  # fmt: skip
    return kept


def advance(
    session: Session, *, limit: int = BATCH, now: datetime | None = None, wait: bool = True
) -> int:
    """One step of the job, in the caller's transaction (the caller commits): the next `limit`
    purchases past the watermark and those that appeared in a gap, into the rollups. Returns how
    many purchases were rolled up (0: caught up, or, `wait` false, another run holds the state:
    PostgreSQL's SKIP LOCKED, so that periodic runs never queue behind a long one). `now`: the
    time gaps are judged by on SQLite (tests)."""
    dialect = dialect_of(session)
    state = _lock_state(session, dialect, wait=wait)
    if state is None:
        return 0
    watermark, gaps = state
    stale = not spans_current(session)
    if stale:  # an older job rolled purchases up after migration 0021 made the spans
        _rebuild_spans(session)
    # the gaps noted before are judged by what ran before the batch is read: a transaction
    # that commits after this is seen by the read, one still running keeps its gap (judged
    # after the read, one committing in between would be neither, and its purchase lost)
    before = _clock(session, dialect, now)
    _open_batch(session, dialect)
    _load_batch(session, dialect, watermark, limit)
    ids = [
        int(i) for i in session.execute(text("SELECT id FROM rollup_batch ORDER BY id")).scalars()
    ]
    if ids:
        _apply_batch(session, dialect)
    _close_batch(session, dialect)
    _note_benefits(session, dialect)
    clock = _clock(session, dialect, now)  # new gaps: noted after the read
    newer = [i for i in ids if i > watermark]
    top = newer[-1] if newer else watermark
    kept = _still_open([h for g in gaps for h in _holes(ids, g.lo, g.hi, g)], before)
    kept += _holes(newer, watermark + 1, top, clock)
    if ids or kept != gaps or stale:
        _save_state(session, top, kept, clock.now)
    return len(ids)


_REBUILD_HOLES = text(
    """
    SELECT lo, hi FROM (
      SELECT id + 1 AS lo, LEAD(id) OVER (ORDER BY id) - 1 AS hi FROM rollup_batch
      UNION ALL
      SELECT 1, MIN(id) - 1 FROM rollup_batch
    ) h WHERE hi >= lo ORDER BY lo
    """
)


def rebuild(session: Session) -> int:
    """The rollups made again from every purchase, in the caller's transaction. No lock on the
    purchases: as `advance` does, the ids not visible below the new watermark become gaps (on
    PostgreSQL kept while a transaction that could write them runs). Returns how many
    purchases."""
    dialect = dialect_of(session)
    _lock_state(session, dialect)
    for table in (*TABLES, "rollup_gaps"):
        session.execute(text(f"DELETE FROM {table}"))
    _open_batch(session, dialect)
    _load_batch(session, dialect, 0, None)
    count, top = session.execute(text("SELECT COUNT(*), MAX(id) FROM rollup_batch")).one()
    holes = session.execute(_REBUILD_HOLES).all()
    _apply_batch(session, dialect)
    _close_batch(session, dialect)
    _note_benefits(session, dialect)
    clock = _clock(session, dialect, None)
    # PostgreSQL: every hole kept, the next run judges it (by a clock read before its own read
    # of the purchases); SQLite: the rebuild writes, so no other writer is half-way: every hole
    # is burnt for good
    gaps = [Gap(int(lo), int(hi), clock.now, clock.horizon) for lo, hi in holes]
    gaps = gaps if dialect == "postgresql" else []
    _save_state(session, int(top or 0), gaps, clock.now)
    return int(count)


# the check -------------------------------------------------------------------------------------
def _covered_sql(dialect: str) -> str:
    """SQL: the purchases the rollups hold, as (member_id, day, amount, store)."""
    return f"""
      SELECT p.member_id, {day_sql("p.occurred_at", dialect)} AS day, p.amount, {_STORE} AS store
        FROM purchases p
       WHERE p.id <= COALESCE((SELECT watermark FROM rollup_state WHERE name = '{STATE}'), 0)
         AND NOT EXISTS (SELECT 1 FROM rollup_gaps g WHERE p.id BETWEEN g.lo AND g.hi)
    """


def _expected(dialect: str) -> dict[str, tuple[str, str]]:
    """Per rollup table: its rows, and the same rows computed from the purchases it covers."""
    month = month_sql("c.day", dialect)
    return {
        "purchase_days": (
            "SELECT day, member_id, store, purchases, revenue FROM purchase_days",
            "SELECT day, member_id, store, COUNT(*), SUM(amount) FROM c "
            "GROUP BY day, member_id, store",
        ),
        "purchase_links": (
            "SELECT scope, day, kind, prev_day, purchases, revenue FROM purchase_links",
            f"""SELECT scope, day, kind, prev_day, SUM(n), SUM(rev) FROM (
                  WITH src AS (
                    SELECT '' AS scope, member_id, day, COUNT(*) AS n, SUM(amount) AS rev
                      FROM c GROUP BY member_id, day
                    UNION ALL
                    SELECT store, member_id, day, COUNT(*), SUM(amount) FROM c
                     WHERE store <> '' GROUP BY store, member_id, day),
                  {links_sql("src")}
                  SELECT * FROM links WHERE n <> 0) l
                GROUP BY scope, day, kind, prev_day""",
        ),
        "member_firsts": (
            "SELECT scope, member_id, first_day FROM member_firsts",
            "SELECT '', member_id, MIN(day) FROM c GROUP BY member_id UNION ALL "
            "SELECT store, member_id, MIN(day) FROM c WHERE store <> '' GROUP BY store, member_id",
        ),
        "cohort_months": (
            "SELECT cohort, month, members FROM cohort_months",
            f"""SELECT cm, m, COUNT(*) FROM (
                  SELECT m, MIN(m) OVER (PARTITION BY member_id) AS cm FROM (
                    SELECT DISTINCT member_id, {month} AS m FROM c) pm) x GROUP BY cm, m""",
        ),
        # the benefit days as benefit_purchases holds them (checked below against the links)
        "member_spans": (
            f"SELECT member_id, {', '.join(SPAN_COLUMNS + BENEFIT_COLUMNS)} FROM member_spans",
            f"""SELECT s.*, {", ".join(f"b.{c}" for c in BENEFIT_COLUMNS)} FROM (
                  {spans_sql("SELECT member_id, day, COUNT(*) AS n FROM c GROUP BY member_id, day")}
                ) s LEFT JOIN ({benefit_spans_sql("1 = 1")}) b ON b.member_id = s.member_id""",
        ),
        # not bound to the watermark: every purchase that used a benefit, as of the last run. Only
        # what it holds is checked (a row no link gives, or with another member or day): a link
        # made since the last run is not in it yet, and the figures look those up
        "benefit_purchases": (
            "SELECT purchase_id, member_id, day FROM benefit_purchases",
            benefits_sql(dialect),
        ),
    }


_MISSING = "(SELECT COUNT(*) FROM (SELECT * FROM made EXCEPT SELECT * FROM held) b)"


def check(session: Session) -> dict[str, int]:
    """Per rollup table, how many rows differ from what its purchases make (0 everywhere: the
    rollups are right). Reads every purchase the rollups cover."""
    dialect = dialect_of(session)
    out = {}
    for table, (held, made) in _expected(dialect).items():
        differing = session.execute(
            text(
                f"""
                WITH c AS ({_covered_sql(dialect)}),
                     held AS ({held}), made AS ({made})
                SELECT (SELECT COUNT(*) FROM (SELECT * FROM held EXCEPT SELECT * FROM made) a)
                     + {"0" if table == "benefit_purchases" else _MISSING}
                """
            )
        ).scalar_one()
        out[table] = int(differing)
    return out
