"""The periodic jobs: their schedule, reservation expiry and idempotency pruning run from the
queue, and the embedded queue's file. In both queue modes where a queue is involved."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from loyalty.extensions import db
from loyalty.jobs.queue import make_huey
from loyalty.models import IdempotencyRecord, Redemption
from loyalty.models.types import utcnow


def test_the_periodic_jobs_and_their_times(queue) -> None:
    def due(hour: int, minute: int) -> set[str]:
        return {t.name for t in queue.huey.read_periodic(datetime(2026, 12, 1, hour, minute))}

    every_minute = {"stripe_sweep", "campaign_sweep", "release_expired", "metrics_rollup"}
    assert due(3, 5) == every_minute | {"expire_points"}  # hourly: midnight in any zone
    assert due(0, 5) == every_minute | {"expire_points"}
    assert due(3, 17) == every_minute | {"prune_idempotency"}


def test_release_expired_gives_the_points_of_overdue_reservations_back(
    app, client, admin, pos, queue
) -> None:
    m = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    client.post(
        f"/api/v1/members/{m['id']}/adjustments",
        json={"points": 500, "reason": "seed"},
        headers=admin,
    )
    body = {"name": "Coffee", "kind": "free_item", "sku": "COFFEE", "points_cost": 200}
    reward = client.post("/api/v1/rewards", json=body, headers=admin).json
    red = client.post(
        "/api/v1/redemptions", json={"member_id": m["id"], "reward_id": reward["id"]}, headers=pos
    ).json
    with app.app_context():
        db.session.execute(update(Redemption).values(expires_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()

    assert queue.run_periodic("release_expired") == ["release_expired"]
    with app.app_context():
        redemption = db.session.get(Redemption, red["id"])
        assert (redemption.status, redemption.released_at is not None) == ("expired", True)
    balance = client.get(f"/api/v1/members/{m['id']}", headers=pos).json["balance"]
    assert (balance["points"], balance["available"]) == (500, 500)


@pytest.mark.parametrize("ttl_hours", [48, 1])
def test_prune_idempotency_keeps_keys_at_least_24_hours(
    app, client, pos, queue, ttl_hours, monkeypatch
) -> None:
    monkeypatch.setitem(app.config, "LOYALTY_IDEMPOTENCY_TTL_HOURS", ttl_hours)
    ages = {"new": 0, "day-old": 23, "older": 30, "oldest": 49}
    for key in ages:
        client.post("/api/v1/members", json={}, headers={**pos, "Idempotency-Key": key})
    with app.app_context():
        for key, hours in ages.items():
            db.session.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.key == key)
                .values(created_at=utcnow() - timedelta(hours=hours))
            )
        db.session.commit()

    assert queue.run_periodic("prune_idempotency") == ["prune_idempotency"]
    with app.app_context():
        kept = set(db.session.scalars(select(IdempotencyRecord.key)))
    assert kept == ({"new", "day-old", "older"} if ttl_hours == 48 else {"new", "day-old"})


def test_the_workers_scheduler_prunes_idempotency_records_at_its_time(
    app, client, pos, queue
) -> None:
    """`flask loyalty worker`'s consumer runs the periodic jobs: at :17 its scheduler enqueues
    prune_idempotency, which deletes the records past the TTL (stored responses, personal data
    in them included, do not stay for ever)."""
    for key in ("old", "new"):
        client.post(
            "/api/v1/members", json={"name": "Ann"}, headers={**pos, "Idempotency-Key": key}
        )
    with app.app_context():
        db.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == "old")
            .values(created_at=utcnow() - timedelta(hours=49))
        )
        db.session.commit()
    consumer = queue.jobs.consumer(1)
    assert consumer.periodic
    scheduler = consumer._create_scheduler()  # the consumer's own, not started as a thread
    scheduler.enqueue_periodic_tasks(datetime(2026, 12, 1, 3, 16))
    assert "prune_idempotency" not in queue.names()
    scheduler.enqueue_periodic_tasks(datetime(2026, 12, 1, 3, 17))
    assert "prune_idempotency" in queue.names()
    assert "prune_idempotency" in queue.drain()
    with app.app_context():
        assert set(db.session.scalars(select(IdempotencyRecord.key))) == {"new"}


def test_the_embedded_queue_is_a_file_only_its_owner_reads(tmp_path) -> None:
    path = tmp_path / "instance" / "jobs.sqlite3"
    settings = {
        "LOYALTY_JOBS_NAME": "loyalty",
        "LOYALTY_JOBS_IMMEDIATE": False,
        "LOYALTY_REDIS_URL": None,
        "LOYALTY_JOBS_FILE": str(path),
    }
    huey = make_huey(settings)
    assert huey.storage.filename == str(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
