"""A rule's budget under 20 concurrent purchases on PostgreSQL, with real parallel
connections: the bonus points given add up to the budget exactly, never more."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from loyalty.extensions import db
from loyalty.models import EarningRule, LedgerEntry
from tests.factories import run_parallel, verify_ledger

pytestmark = pytest.mark.postgres

N = 20


def test_twenty_concurrent_purchases_stop_at_the_budget_exactly(
    app, client, pos, admin, runner
) -> None:
    rule = client.post(
        "/api/v1/earning-rules",
        json={"name": "Launch", "kind": "bonus_points", "value": 15, "budget": 100},
        headers=admin,
    ).json
    members = [
        client.post("/api/v1/members", json={"name": f"M{i}"}, headers=pos).json["id"]
        for i in range(N)
    ]

    def buy(c, i: int):
        body = {"external_id": f"p{i}", "member_id": members[i], "amount": 1000, "currency": "EUR"}
        r = c.post("/api/v1/purchases", json=body, headers=pos)
        assert r.status_code == 201, r.json
        return r.json

    results = run_parallel(app, N, buy)
    bonuses = Counter(
        next((item["points"] for item in r["breakdown"] if item["rule_id"] == rule["id"]), 0)
        for r in results
    )
    assert bonuses == Counter({15: 6, 10: 1, 0: 13})  # 6 × 15 + the 10 left = 100
    assert sum(r["points_earned"] for r in results) == N * 10 + 100
    with app.app_context():
        assert db.session.get(EarningRule, rule["id"]).budget_used == 100
        bonus = db.session.scalar(
            select(func.sum(LedgerEntry.points)).where(LedgerEntry.kind == "bonus")
        )
        assert bonus == 100
    verify_ledger(runner)
