"""The expiry job while tills spend and earn, under real parallel connections on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from loyalty.extensions import db
from loyalty.jobs import tasks
from loyalty.models import LedgerEntry
from tests.factories import run_parallel, verify_ledger

pytestmark = pytest.mark.postgres

AS_OF = datetime(2099, 1, 1, tzinfo=UTC)  # every lot has lapsed by then


def test_the_expiry_job_beside_redemptions_and_purchases_keeps_the_books(
    app, client, runner, pos, admin
) -> None:
    client.put("/api/v1/program", json={"points_expire_after_days": 1}, headers=admin)
    ids = []
    for _ in range(10):
        m = client.post("/api/v1/members", json={}, headers=pos).json
        client.post(
            f"/api/v1/members/{m['id']}/adjustments",
            json={"points": 100, "reason": "seed"},
            headers=admin,
        )
        ids.append(m["id"])
    reward = client.post(
        "/api/v1/rewards",
        json={"name": "Cake", "kind": "free_item", "sku": "CAKE", "points_cost": 30},
        headers=admin,
    ).json

    def step(c, i):
        if i == 0:
            with app.app_context():
                return tasks.expire_points(AS_OF, 3)  # several transactions of 3 members
        member_id = ids[(i - 1) % 10]
        if i <= 10:
            body = {"member_id": member_id, "reward_id": reward["id"], "instant": True}
            return c.post("/api/v1/redemptions", json=body, headers=pos)
        body = {"external_id": f"s-{i}", "member_id": member_id, "amount": 2000, "currency": "EUR"}
        return c.post("/api/v1/purchases", json=body, headers=pos)

    results = run_parallel(app, 21, step, workers=21)
    job, answers = results[0], results[1:]
    assert {(r.status_code, (r.json or {}).get("code")) for r in answers} <= {
        (201, None),
        (422, "insufficient_points"),
    }
    with app.app_context():
        expired = -db.session.scalar(
            select(func.sum(LedgerEntry.points)).where(LedgerEntry.kind == "expire")
        )
    assert expired == job["points"]  # what the job says is what it wrote
    verify_ledger(runner)
    second = runner.invoke(args=["loyalty", "expire-points", "--as-of", "2099-01-01"])
    assert second.exit_code == 0, second.output
    for member_id in ids:  # everything left has lapsed by then: nothing stays
        balance = client.get(f"/api/v1/members/{member_id}", headers=pos).json["balance"]
        assert balance == {"points": 0, "held": 0, "pending": 0, "available": 0}
    verify_ledger(runner)
