"""The metrics_rollup job: a purchase that becomes visible after purchases with higher ids (its
transaction committed later) is not lost, a gap no purchase fills is dropped after a while, and
the figures are the same before and after each step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import text

from loyalty.domain import rollups
from loyalty.extensions import db
from loyalty.jobs import tasks

PERIOD = "start=2026-03-01&end=2026-03-31"


def _purchase(member_id: int, client_id: int, purchase_id: int, day: int) -> None:
    db.session.execute(
        text(
            "INSERT INTO purchases (id, member_id, api_client_id, external_id, amount, currency, "
            "occurred_at, store_id, points_earned, returned_amount, points_reversed, created_at) "
            "VALUES (:id, :m, :c, :e, 1000, 'EUR', :at, 's1', 0, 0, 0, :at)"
        ),
        {
            "id": purchase_id,
            "m": member_id,
            "c": client_id,
            "e": f"x-{purchase_id}",
            "at": datetime(2026, 3, day, 12, tzinfo=UTC),
        },
    )


def _state() -> tuple[int, list[tuple[int, int]]]:
    watermark = db.session.execute(text("SELECT watermark FROM rollup_state")).scalar_one()
    gaps = db.session.execute(text("SELECT lo, hi FROM rollup_gaps ORDER BY lo")).all()
    return int(watermark), [(int(lo), int(hi)) for lo, hi in gaps]


class _InFlight:
    """PostgreSQL: a transaction open on another connection, begun before the job notes the
    gaps (the one that drew ids 3 and 4, as far as the job can tell); SQLite: nothing (one
    writer: gaps there are judged by age)."""

    def __init__(self, database_url: str) -> None:
        self.conn = None
        if database_url.startswith("postgresql"):
            self.conn = psycopg.connect(database_url.replace("+psycopg", ""))
            self.conn.execute("SELECT 1")  # the transaction has begun

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def test_a_purchase_committed_late_below_the_watermark_is_rolled_up(
    app, client, pos, api_key, database_url
) -> None:
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    reports = api_key("reports")
    in_flight = _InFlight(database_url)
    with app.app_context():
        client_id = db.session.execute(text("SELECT MIN(id) FROM api_clients")).scalar_one()
        for purchase_id, day in ((1, 2), (2, 3), (5, 4)):  # 3 and 4 still in flight
            _purchase(member["id"], client_id, purchase_id, day)
        db.session.commit()
        assert tasks.metrics_rollup() == 3
        assert _state() == (5, [(3, 4)])
    figures = client.get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports).json
    assert figures["purchases"] == 3

    with app.app_context():
        _purchase(member["id"], client_id, 3, 20)  # commits now, below the watermark
        db.session.commit()
    assert (
        client.get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports).json["purchases"] == 4
    )  # read raw from the gap meanwhile
    with app.app_context():
        assert tasks.metrics_rollup() == 1
        assert _state() == (5, [(4, 4)])
        assert rollups.check(db.session()) == dict.fromkeys(rollups.TABLES, 0)
        db.session.rollback()
        # id 4 never comes (rolled back): its gap is dropped once old enough (SQLite), once no
        # transaction begun before it was noted is open (PostgreSQL)
        in_flight.close()
        later = datetime.now(UTC) + timedelta(seconds=rollups.GAP_SECONDS + 1)
        assert rollups.advance(db.session(), now=later) == 0
        db.session.commit()
        assert _state() == (5, [])
    after = client.get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports).json
    assert (after["purchases"], after["revenue"], after["active_customers"]) == (4, 4000, 1)


def test_a_transaction_on_another_database_does_not_keep_a_gap(
    app, client, pos, database_url
) -> None:
    """PostgreSQL: transaction ids are the cluster's, but only this database's transactions can
    fill a gap of its purchases: one running on another database (a report, another app) does
    not hold the gap open."""
    if not database_url.startswith("postgresql"):
        return  # SQLite: gaps go by age (the test above)
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    elsewhere = psycopg.connect(
        database_url.replace("+psycopg", "").rsplit("/", 1)[0] + "/postgres"
    )
    try:
        with app.app_context():
            client_id = db.session.execute(text("SELECT MIN(id) FROM api_clients")).scalar_one()
            for purchase_id, day in ((1, 2), (3, 4)):
                _purchase(member["id"], client_id, purchase_id, day)
            db.session.commit()
            # an id of its own, drawn before the gap is noted, on the cluster's `postgres` database
            elsewhere.execute("SELECT pg_current_xact_id()")
            assert tasks.metrics_rollup() == 2
            assert _state() == (3, [])  # id 2 has no transaction here that could still commit it
    finally:
        elsewhere.close()


def test_a_purchase_committing_while_the_job_reads_is_not_lost(
    app, client, pos, api_key, database_url, monkeypatch
) -> None:
    """PostgreSQL: a gap noted in one run is judged in the next by who was running before that
    run read the purchases. A transaction that commits after the read (so its purchase is not
    in the batch) but before the gaps are judged keeps its gap, and the run after rolls it up;
    judged by a clock read after the read, it would be taken for gone and its purchase lost."""
    if not database_url.startswith("postgresql"):
        return  # SQLite has one writer: nothing commits while the job runs
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    reports = api_key("reports")
    late = psycopg.connect(database_url.replace("+psycopg", ""))
    try:
        with app.app_context():
            client_id = db.session.execute(text("SELECT MIN(id) FROM api_clients")).scalar_one()
            _purchase(member["id"], client_id, 1, 2)
            late.execute(  # id 2, in flight
                "INSERT INTO purchases (id, member_id, api_client_id, external_id, amount,"
                " currency, occurred_at, store_id, points_earned, returned_amount,"
                " points_reversed, created_at) VALUES (2, %s, %s, 'x-2', 1000, 'EUR',"
                " '2026-03-03 12:00+00', 's1', 0, 0, 0, now())",
                (member["id"], client_id),
            )
            _purchase(member["id"], client_id, 3, 4)
            db.session.commit()
            assert tasks.metrics_rollup() == 2
            assert _state() == (3, [(2, 2)])

            close = rollups._close_batch

            def commit_meanwhile(session, dialect):  # after the read, before the judging
                close(session, dialect)
                if late.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    late.commit()

            monkeypatch.setattr(rollups, "_close_batch", commit_meanwhile)
            assert rollups.advance(db.session()) == 0  # id 2 committed too late for this read
            db.session.commit()
            assert _state() == (3, [(2, 2)])  # kept: it was running when the run began
            assert tasks.metrics_rollup() == 1  # the next run rolls it up
            assert _state() == (3, [])
            assert rollups.check(db.session()) == dict.fromkeys(rollups.TABLES, 0)
    finally:
        late.close()
    figures = client.get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports).json
    assert figures["purchases"] == 3
