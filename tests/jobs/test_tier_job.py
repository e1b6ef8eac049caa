"""The nightly tier recompute: its time, and a tier lowered once its spend left the window."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from loyalty.extensions import db
from loyalty.models import Purchase, TierChange

SILVER = {"name": "Silver", "qualifying_spend": 10000, "multiplier": 1.5, "benefits": []}


def test_the_tier_recompute_runs_nightly(queue) -> None:
    def due(hour: int, minute: int) -> set[str]:
        return {t.name for t in queue.huey.read_periodic(datetime(2026, 12, 1, hour, minute))}

    assert "recompute_tiers" in due(2, 23)
    assert "recompute_tiers" not in due(2, 24) | due(3, 23)


def test_the_nightly_recompute_lowers_a_tier_whose_spend_left_the_window(
    app, client, admin, pos, queue
) -> None:
    r = client.put("/api/v1/program", json={"tiers": [SILVER]}, headers=admin)
    assert r.status_code == 200, r.json
    m = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    body = {"external_id": "p1", "member_id": m["id"], "amount": 12000, "currency": "EUR"}
    assert client.post("/api/v1/purchases", json=body, headers=pos).status_code == 201
    assert client.get(f"/api/v1/members/{m['id']}", headers=pos).json["tier"] == "Silver"

    assert queue.run_periodic("recompute_tiers") == ["recompute_tiers"]
    assert client.get(f"/api/v1/members/{m['id']}", headers=pos).json["tier"] == "Silver"

    with app.app_context():  # a year and a day later, as far as the spend is concerned
        for purchase in db.session.scalars(select(Purchase)):
            purchase.occurred_at -= timedelta(days=366)
        db.session.commit()
    assert queue.run_periodic("recompute_tiers") == ["recompute_tiers"]
    got = client.get(f"/api/v1/members/{m['id']}", headers=pos).json
    assert (got["tier"], got["tier_progress"]["spend"]) == (None, 0)
    with app.app_context():
        last = db.session.scalars(select(TierChange).order_by(TierChange.id.desc())).first()
        assert (last.from_tier, last.to_tier, last.reason, last.actor) == (
            "Silver",
            None,
            "recompute",
            "recompute_tiers",
        )
