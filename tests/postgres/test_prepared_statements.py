"""psycopg's prepared statements outlive the requests that succeed (loyalty.app.end_transaction).

psycopg forgets every statement it prepared on a connection after a ROLLBACK (DEALLOCATE ALL).
A request that got its answer ends with COMMIT instead, so reads and replayed retries between
two purchases do not make the second parse and plan its statements again.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from loyalty.extensions import db

pytestmark = pytest.mark.postgres

PREPARED = "SELECT statement FROM pg_prepared_statements"


def prepared(app) -> list[str]:
    """The statements prepared on the pool's one connection."""
    with app.app_context(), db.engine.connect() as conn:
        names = [row[0] for row in conn.exec_driver_sql(PREPARED).all()]
        conn.commit()  # not a rollback, which would deallocate them
        return names


@pytest.fixture
def one_connection(app):
    with app.app_context():
        db.engine.dispose()  # from here on the pool holds the one connection the requests use


def test_reads_and_replays_keep_the_purchase_statements_prepared(
    app, client, pos, one_connection
) -> None:
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    body = {"external_id": "s1", "member_id": member["id"], "amount": 500, "currency": "EUR"}
    headers = {**pos, "Idempotency-Key": "k1"}
    assert client.post("/api/v1/purchases", json=body, headers=headers).status_code == 201
    before = prepared(app)
    assert any("INSERT INTO purchases" in sql for sql in before)
    assert client.get(f"/api/v1/members/{member['id']}", headers=pos).status_code == 200
    assert client.get("/api/v1/members/999999", headers=pos).status_code == 404
    replay = client.post("/api/v1/purchases", json=body, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert prepared(app) == before


def test_a_refused_request_rolls_back_and_the_next_purchase_prepares_again(
    app, client, pos, one_connection
) -> None:
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    body = {"external_id": "s1", "member_id": member["id"], "amount": 500, "currency": "EUR"}
    assert client.post("/api/v1/purchases", json=body, headers=pos).status_code == 201
    refused = client.post("/api/v1/purchases", json={**body, "currency": "USD"}, headers=pos)
    assert refused.status_code == 422
    assert not any("INSERT INTO purchases" in sql for sql in prepared(app))
    again = client.post("/api/v1/purchases", json={**body, "external_id": "s2"}, headers=pos)
    assert again.status_code == 201
    assert any("INSERT INTO purchases" in sql for sql in prepared(app))


def test_a_purchase_with_a_bonus_credits_its_awards_in_one_statement_each(
    app, client, pos, admin, one_connection
) -> None:
    rule = {"name": "Big basket", "kind": "bonus_points", "value": 5}
    rule_body = {**rule, "conditions": {"min_spend": 1000}}
    assert client.post("/api/v1/earning-rules", json=rule_body, headers=admin).status_code == 201
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    body = {"external_id": "s1", "member_id": member["id"], "amount": 2500, "currency": "EUR"}
    sale = client.post("/api/v1/purchases", json=body, headers=pos)
    assert sale.status_code == 201, sale.json
    assert sale.json["points_earned"] == 30
    assert sale.json["balance"]["points"] == 30
    names = prepared(app)
    # the earn and the bonus: one two-row INSERT of entries, and one lot for both
    entries = [sql for sql in names if sql.startswith("INSERT INTO ledger_entries")]
    lots = [sql for sql in names if sql.startswith("INSERT INTO point_lots")]
    assert [sql.count("), (") for sql in entries + lots] == [1, 0]
    assert sum("UPDATE members" in sql for sql in names) == 1
    with app.app_context():
        held = db.session.execute(text("SELECT points, remaining FROM point_lots")).all()
    assert [tuple(lot) for lot in held] == [(30, 30)]
