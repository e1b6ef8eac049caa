"""Concurrent purchases of one member on PostgreSQL, with real parallel connections: the tier
ends where the spend of all of them reaches, and each step up is recorded once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from loyalty.extensions import db
from loyalty.models import Member, TierChange
from tests.factories import run_parallel

pytestmark = pytest.mark.postgres

N = 20
TIERS = [
    {"name": "Silver", "qualifying_spend": 10000, "multiplier": 1.5, "benefits": []},
    {"name": "Gold", "qualifying_spend": 36000, "multiplier": 2, "benefits": []},
]


def test_twenty_purchases_at_once_raise_the_tier_to_what_their_spend_reaches(
    app, client, admin, pos
) -> None:
    r = client.put("/api/v1/program", json={"tiers": TIERS}, headers=admin)
    assert r.status_code == 200, r.json
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json

    def buy(c, i: int) -> int:
        body = {
            "external_id": f"p-{i}",
            "member_id": member["id"],
            "amount": 2000,
            "currency": "EUR",
        }
        return c.post("/api/v1/purchases", json=body, headers=pos).status_code

    assert run_parallel(app, N, buy) == [201] * N
    with app.app_context():
        assert db.session.get(Member, member["id"]).tier == "Gold"  # 40000 spent
        moves = db.session.execute(
            select(TierChange.from_tier, TierChange.to_tier)
            .where(TierChange.member_id == member["id"])
            .order_by(TierChange.id)
        ).all()
    # each step once: straight to Gold or through Silver, never a step twice
    assert [tuple(m) for m in moves] in ([(None, "Silver"), ("Silver", "Gold")], [(None, "Gold")])
