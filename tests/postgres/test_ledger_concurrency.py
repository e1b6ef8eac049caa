"""The ledger under real parallel connections on PostgreSQL (16+ at once)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from loyalty.extensions import db
from loyalty.models import LedgerEntry, Purchase, Return
from tests.factories import run_parallel, verify_ledger

pytestmark = pytest.mark.postgres


@pytest.fixture
def member(client, pos) -> dict:
    return client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json


def body(member, external_id, amount=1000) -> dict:
    return {
        "external_id": external_id,
        "member_id": member["id"],
        "amount": amount,
        "currency": "EUR",
    }


def test_200_concurrent_purchases_for_one_member_add_up_exactly(
    app, client, runner, pos, member
) -> None:
    amounts = [100 + 37 * i for i in range(200)]  # 1.00 … 74.63: each earns floor(amount/100)
    results = run_parallel(
        app,
        200,
        lambda c, i: c.post(
            "/api/v1/purchases", json=body(member, f"p-{i}", amounts[i]), headers=pos
        ),
    )
    assert {r.status_code for r in results} == {201}
    expected = sum(a // 100 for a in amounts)
    m = client.get(f"/api/v1/members/{member['id']}", headers=pos).json
    assert m["balance"] == {"points": expected, "held": 0, "pending": 0, "available": expected}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 200
    verify_ledger(runner)


def test_the_same_purchase_20_times_with_one_key_earns_once(
    app, client, runner, pos, member
) -> None:
    headers = {**pos, "Idempotency-Key": "receipt-1"}
    results = run_parallel(
        app,
        20,
        lambda c, i: c.post("/api/v1/purchases", json=body(member, "p-1"), headers=headers),
        workers=20,
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.get_data() for r in results}) == 1  # the same response, byte for byte
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in results) == 19
    assert (
        client.get(f"/api/v1/members/{member['id']}", headers=pos).json["balance"]["points"] == 10
    )
    verify_ledger(runner)


def test_the_same_external_id_20_times_without_a_key_earns_once(
    app, client, runner, pos, member
) -> None:
    results = run_parallel(
        app,
        20,
        lambda c, i: c.post("/api/v1/purchases", json=body(member, "p-1"), headers=pos),
        workers=20,
    )
    assert sorted(r.status_code for r in results) == [200] * 19 + [201]
    assert len({r.json["id"] for r in results}) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Purchase)) == 1
    assert (
        client.get(f"/api/v1/members/{member['id']}", headers=pos).json["balance"]["points"] == 10
    )
    verify_ledger(runner)


def test_concurrent_returns_never_exceed_the_purchase(app, client, runner, pos, member) -> None:
    p = client.post("/api/v1/purchases", json=body(member, "p-1", 1000), headers=pos).json
    url = f"/api/v1/purchases/{p['id']}/returns"
    results = run_parallel(
        app,
        30,
        lambda c, i: c.post(url, json={"external_id": f"r-{i}", "amount": 100}, headers=pos),
        workers=30,
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [201] * 10 + [422] * 20
    assert {r.json["code"] for r in results if r.status_code == 422} == {"return_exceeds_purchase"}
    with app.app_context():
        assert db.session.scalar(select(func.sum(Return.amount))) == 1000
        purchase = db.session.get(Purchase, p["id"])
        assert (purchase.returned_amount, purchase.points_reversed) == (1000, 10)
    assert client.get(f"/api/v1/members/{member['id']}", headers=pos).json["balance"]["points"] == 0
    verify_ledger(runner)


def test_concurrent_adjustments_never_spend_below_zero(app, client, runner, admin, member) -> None:
    client.post(
        f"/api/v1/members/{member['id']}/adjustments",
        json={"points": 50, "reason": "seed"},
        headers=admin,
    )
    url = f"/api/v1/members/{member['id']}/adjustments"
    results = run_parallel(
        app,
        20,
        lambda c, i: c.post(url, json={"points": -10, "reason": f"take {i}"}, headers=admin),
        workers=20,
    )
    assert sorted(r.status_code for r in results) == [201] * 5 + [422] * 15
    assert (
        client.get(f"/api/v1/members/{member['id']}", headers=admin).json["balance"]["available"]
        == 0
    )
    verify_ledger(runner)
