"""Concurrent returns of one purchase on PostgreSQL, with real parallel connections: whatever
the interleaving, the returns never add up to more than was bought (amount or lines)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from loyalty.extensions import db
from loyalty.models import LedgerEntry, Purchase, Return
from tests.factories import run_parallel, verify_ledger

pytestmark = pytest.mark.postgres

N = 20


@pytest.fixture
def member(client, pos) -> dict:
    return client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json


def purchase(client, pos, member: dict, **extra) -> dict:
    body = {
        "external_id": "p-1",
        "member_id": member["id"],
        "amount": 3000,
        "currency": "EUR",
        **extra,
    }
    r = client.post("/api/v1/purchases", json=body, headers=pos)
    assert r.status_code == 201, r.json
    return r.json


def state(app, purchase_id: int) -> tuple[int, int, int, int]:
    """(returns, returned_amount, points_reversed, sum of the reverse entries) as stored."""
    with app.app_context():
        p = db.session.get(Purchase, purchase_id)
        assert p is not None
        returns = db.session.scalar(
            select(func.count()).select_from(Return).where(Return.purchase_id == purchase_id)
        )
        reversed_in_ledger = db.session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.points), 0)).where(
                LedgerEntry.purchase_id == purchase_id, LedgerEntry.kind == "reverse"
            )
        )
        return returns, p.returned_amount, p.points_reversed, reversed_in_ledger


def test_twenty_returns_of_the_same_line_return_only_what_was_bought(
    app, client, pos, member, runner
) -> None:
    """3 of sku A were bought; 20 tills return one A each at the same moment: 3 are taken."""
    lines = [
        {"sku": "A", "quantity": 2, "unit_price": 1000},
        {"sku": "A", "quantity": 1, "unit_price": 1000},
    ]
    p = purchase(client, pos, member, lines=lines)  # 30 points
    url = f"/api/v1/purchases/{p['id']}/returns"
    results = run_parallel(
        app,
        N,
        lambda c, i: c.post(
            url,
            json={"external_id": f"r-{i}", "amount": 100, "lines": [{"sku": "A", "quantity": 1}]},
            headers=pos,
        ),
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [201] * 3 + [422] * (N - 3), codes
    refused = [r.json for r in results if r.status_code == 422]
    assert {(x["code"], tuple(x["errors"])) for x in refused} == {
        ("return_exceeds_purchase", ("lines.0.quantity",))
    }
    # line by line: the three A took back their 10 points each, whatever the amounts refunded
    assert state(app, p["id"]) == (3, 300, 30, -30)
    verify_ledger(runner)


def test_twenty_returns_of_one_amount_never_exceed_the_purchase(
    app, client, pos, member, runner
) -> None:
    p = purchase(client, pos, member)
    url = f"/api/v1/purchases/{p['id']}/returns"
    results = run_parallel(
        app,
        N,
        lambda c, i: c.post(url, json={"external_id": f"r-{i}", "amount": 1000}, headers=pos),
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [201] * 3 + [422] * (N - 3), codes
    assert {r.json["code"] for r in results if r.status_code == 422} == {"return_exceeds_purchase"}
    assert state(app, p["id"]) == (3, 3000, 30, -30)
    balance = client.get(f"/api/v1/members/{member['id']}", headers=pos).json["balance"]
    assert balance == {"points": 0, "held": 0, "pending": 0, "available": 0}
    verify_ledger(runner)
