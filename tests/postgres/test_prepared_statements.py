"""psycopg's prepared statements outlive rollbacks (see loyalty._configure_postgresql).

Without that, every rollback (a read request's end, a refused request, a replayed retry) makes
psycopg send DEALLOCATE ALL, and the hot path parses and plans its statements again.
"""

from __future__ import annotations

import pytest

from loyalty.domain import purchases
from loyalty.extensions import db

pytestmark = pytest.mark.postgres

PREPARED = "SELECT count(*) FROM pg_prepared_statements"


def prepare_one(conn) -> None:
    purchases._BY_MEMBER.first(conn, {"member_id": 1})  # a Fast statement: prepared at once


def test_a_rollback_keeps_the_prepared_statements(app) -> None:
    with app.app_context(), db.engine.connect() as conn:
        prepare_one(conn)
        assert conn.exec_driver_sql(PREPARED).scalar() >= 1
        conn.rollback()
        assert conn.exec_driver_sql(PREPARED).scalar() >= 1
        with pytest.raises(Exception, match="division by zero"):
            conn.exec_driver_sql("SELECT 1/0")
        conn.rollback()  # out of a failed transaction
        assert conn.exec_driver_sql(PREPARED).scalar() >= 1


def test_the_pools_reset_keeps_them_too(app) -> None:
    with app.app_context():
        conn = db.engine.connect()
        prepare_one(conn)
        raw = conn.connection.driver_connection
        conn.close()  # back to the pool, inside the read transaction: the pool resets it
        assert raw.pgconn.transaction_status == 0  # IDLE: the reset did end the transaction
        assert raw.execute(PREPARED).fetchone()[0] >= 1
        raw.rollback()


def test_a_refused_request_leaves_the_purchase_statements_prepared(app, client, pos) -> None:
    with app.app_context():
        db.engine.dispose()  # from here on the pool holds the one connection these requests use
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    body = {"external_id": "s1", "member_id": member["id"], "amount": 500, "currency": "EUR"}
    assert client.post("/api/v1/purchases", json=body, headers=pos).status_code == 201
    refused = client.post("/api/v1/purchases", json={**body, "currency": "USD"}, headers=pos)
    assert refused.status_code == 422
    with app.app_context(), db.engine.connect() as conn:
        names = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").all()
    assert any("INSERT INTO purchases" in n[0] for n in names)
