"""The metrics rollup job against real concurrent transactions on PostgreSQL: periodic runs skip
instead of queueing behind a run that holds the state, a purchase whose transaction stays open
past any age limit is still rolled up when it commits, and a rebuild neither waits for nor stalls
the purchases being written meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import text

from loyalty.domain import rollups
from loyalty.extensions import db
from loyalty.jobs import tasks

pytestmark = pytest.mark.postgres

PERIOD = "start=2026-03-01&end=2026-03-31"
#: far past the SQLite age limit: on PostgreSQL age alone never drops a gap
LATER = timedelta(seconds=rollups.GAP_SECONDS * 10)

_INSERT = (
    "INSERT INTO purchases ({id_col}member_id, api_client_id, external_id, amount, currency, "
    "occurred_at, store_id, points_earned, returned_amount, points_reversed, created_at) "
    "VALUES ({id_val}%s, %s, %s, 1000, 'EUR', '2026-03-10 12:00+00', 's1', 0, 0, 0, now()) "
    "RETURNING id"
)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """Another connection to the test database, as a till or an import on another server."""
    with psycopg.connect(database_url.replace("+psycopg", "")) as c:
        yield c


def _setup(app, client, pos) -> tuple[int, int]:
    """A member, the client the purchases are posted by; the rollups caught up."""
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    with app.app_context():
        client_id = db.session.execute(text("SELECT MIN(id) FROM api_clients")).scalar_one()
        tasks.metrics_rollup(None, True)
    return int(member["id"]), int(client_id)


def _buy(c: psycopg.Connection, member_id: int, client_id: int, purchase_id: int | None) -> int:
    sql = _INSERT.format(
        id_col="" if purchase_id is None else "id, ",
        id_val="" if purchase_id is None else "%s, ",
    )
    args = (member_id, client_id, f"c-{time.monotonic_ns()}")
    row = c.execute(sql, args if purchase_id is None else (purchase_id, *args)).fetchone()
    assert row is not None
    return int(row[0])


def _gaps(app) -> list[tuple[int, int]]:
    with app.app_context():
        rows = db.session.execute(text("SELECT lo, hi FROM rollup_gaps ORDER BY lo")).all()
        db.session.rollback()
    return [(int(lo), int(hi)) for lo, hi in rows]


def _advance(app, **kwargs: object) -> int:
    with app.app_context():
        count = rollups.advance(db.session(), **kwargs)  # type: ignore[arg-type]
        db.session.commit()
    return count


def _checked(app) -> None:
    with app.app_context():
        assert rollups.check(db.session()) == dict.fromkeys(rollups.TABLES, 0)
        db.session.rollback()


def test_a_periodic_run_skips_while_another_run_holds_the_state(app, client, pos, conn) -> None:
    member_id, client_id = _setup(app, client, pos)
    with psycopg.connect(conn.info.dsn, autocommit=True) as till:
        _buy(till, member_id, client_id, None)
    conn.execute("SELECT 1 FROM rollup_state FOR UPDATE")  # a long run holds the state
    began = time.monotonic()
    queued = threading.Timer(3, conn.rollback)  # were it queued: it would run after 3 s
    queued.start()
    with app.app_context():
        assert tasks.metrics_rollup() == 0  # the periodic run: skipped, not queued
    queued.cancel()
    assert time.monotonic() - began < 2

    done: list[int] = []

    def command_line() -> None:
        with app.app_context():
            done.append(tasks.metrics_rollup(None, True))

    waiting = threading.Thread(target=command_line)
    waiting.start()
    time.sleep(0.5)
    assert waiting.is_alive() and not done  # the command line waits for its turn
    conn.rollback()
    waiting.join(10)
    assert done == [1]
    _checked(app)


@pytest.mark.parametrize("drawn", ["insert", "nextval"])
def test_a_purchase_in_a_transaction_open_past_any_age_limit_is_rolled_up(
    app, client, pos, api_key, conn, drawn: str
) -> None:
    """A lower id held by an open transaction while a higher one commits and the job runs,
    again and again with its clock far past GAP_SECONDS: the gap stays while the transaction
    runs. `insert`: the purchase is written (the transaction has an xid); `nextval`: the id is
    only drawn (no xid yet, as an import reserves its ids before the COPY)."""
    member_id, client_id = _setup(app, client, pos)
    if drawn == "insert":
        held = _buy(conn, member_id, client_id, None)
    else:
        held = int(conn.execute("SELECT nextval('purchases_id_seq')").fetchone()[0])  # type: ignore[index]
    with psycopg.connect(conn.info.dsn, autocommit=True) as till:
        higher = _buy(till, member_id, client_id, None)
    assert higher > held
    for step in range(1, 4):  # the job's clock: GAP_SECONDS × 10 later each run
        _advance(app, now=datetime.now(UTC) + step * LATER)
        assert (held, held) in _gaps(app)
    if drawn == "nextval":
        _buy(conn, member_id, client_id, held)
    conn.commit()
    reports = api_key("reports")
    r = client.get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports)
    assert r.json["purchases"] == 2, r.json  # read raw from the gap
    assert _advance(app, now=datetime.now(UTC) + 4 * LATER) == 1
    assert _gaps(app) == []
    _checked(app)
    r = client.get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports)
    assert r.json["purchases"] == 2, r.json


def test_a_rebuild_takes_no_lock_on_the_purchases(app, client, pos, api_key, conn) -> None:
    """A purchase being written (its transaction open) does not hold the rebuild up, and is
    counted once it commits: the rebuild notes its id as a gap instead of locking the table."""
    member_id, client_id = _setup(app, client, pos)
    with psycopg.connect(conn.info.dsn, autocommit=True) as till:
        _buy(till, member_id, client_id, None)
        held = _buy(conn, member_id, client_id, None)  # open: ROW EXCLUSIVE on purchases
        _buy(till, member_id, client_id, None)
        with app.app_context():
            db.session.execute(text("SET LOCAL lock_timeout = '2s'"))
            assert rollups.rebuild(db.session()) == 2
            db.session.commit()
        assert _gaps(app) == [(held, held)]
        conn.commit()
        r = client.get(f"/api/v1/metrics/retention?{PERIOD}", headers=api_key("reports"))
        assert r.json["purchases"] == 3, r.json
        assert _advance(app) == 1
    assert _gaps(app) == []
    _checked(app)
