"""Win-back campaigns as jobs: the request creates the campaign (202), the job issues in batches
(LOYALTY_CAMPAIGN_BATCH is 3 here), and a run after a crash issues nothing twice. In both queue
modes (SQLite file, Redis)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from loyalty.domain import campaigns
from loyalty.extensions import db
from loyalty.models import AuditEntry, Campaign, Purchase, Voucher, VoucherHoldout

BODY = {
    "inactive_days": 90,
    "kind": "amount",
    "value": 300,
    "valid_days": 30,
    "holdout_percent": 25,
    "campaign": "wb-jobs",
}


@pytest.fixture
def lapsed(app, client, pos) -> list[int]:
    """8 members whose last purchase was 200 days ago, 2 who bought last week, 1 who never did."""
    ids = []
    for i in range(10):
        m = client.post("/api/v1/members", json={}, headers=pos).json
        body = {"external_id": f"p{i}", "member_id": m["id"], "amount": 1000, "currency": "EUR"}
        client.post("/api/v1/purchases", json=body, headers=pos)
        ids.append(m["id"])
    client.post("/api/v1/members", json={}, headers=pos)
    with app.app_context():
        for member_ids, days in ((ids[:8], 200), (ids[8:], 7)):
            db.session.execute(
                update(Purchase)
                .where(Purchase.member_id.in_(member_ids))
                .values(occurred_at=datetime.now(UTC) - timedelta(days=days))
            )
        db.session.commit()
    return ids[:8]


def _issued(app) -> tuple[Counter[int], int]:
    """(win_back vouchers per member, holdout records) of the campaign."""
    with app.app_context():
        vouchers = db.session.scalars(
            select(Voucher.member_id).where(Voucher.campaign == BODY["campaign"])
        ).all()
        held = db.session.scalar(select(func.count()).select_from(VoucherHoldout))
    return Counter(vouchers), held or 0


@pytest.fixture
def batches(monkeypatch) -> list[int]:
    """Counts the batches the jobs run (one call of campaigns.run_batch each)."""
    calls: list[int] = []
    real = campaigns.run_batch

    def counted(session, campaign_id, *, limit):
        calls.append(campaign_id)
        return real(session, campaign_id, limit=limit)

    monkeypatch.setattr(campaigns, "run_batch", counted)
    return calls


def test_a_win_back_campaign_runs_as_a_job_in_batches_with_the_right_counts(
    app, client, admin, lapsed, queue, batches, stripe_on
) -> None:
    dry = client.post("/api/v1/campaigns/win-back", json={**BODY, "dry_run": True}, headers=admin)
    assert (dry.status_code, dry.json["eligible"]) == (200, 8)
    r = client.post("/api/v1/campaigns/win-back", json=BODY, headers=admin)
    assert r.status_code == 202
    assert (r.json["status"], r.json["eligible"], r.json["dry_run"]) == ("pending", 0, False)
    assert queue.names() == ["run_campaign"]
    assert _issued(app) == (Counter(), 0)  # nothing issued in the request

    ran = queue.drain()
    assert ran[0] == "run_campaign" and set(ran[1:]) == {"stripe_mirror"}
    assert len(batches) == 3  # 3 + 3 + 2 members
    done = client.get(r.headers["Location"], headers=admin).json
    assert (done["status"], done["eligible"], done["issued"], done["holdout"]) == (
        "done",
        8,
        dry.json["issued"],
        dry.json["holdout"],
    )
    per_member, held = _issued(app)
    assert (sum(per_member.values()), held) == (done["issued"], done["holdout"])
    assert set(per_member) <= set(lapsed) and max(per_member.values()) == 1
    with app.app_context():
        assert set(
            db.session.scalars(select(Voucher.stripe_status).where(Voucher.kind == "win_back"))
        ) == {"synced"}  # each batch's vouchers mirrored by the jobs its commit enqueued
        audit = db.session.scalar(
            select(AuditEntry).where(AuditEntry.action == "campaign.win_back")
        )
        assert audit.detail["issued"] == done["issued"] and audit.actor == "admin"


def test_a_campaign_that_fails_mid_batch_is_retried_and_issues_nothing_twice(
    app, client, admin, lapsed, queue, monkeypatch
) -> None:
    real = campaigns.run_batch
    calls = []

    def crash_in_second_batch(session, campaign_id, *, limit):
        calls.append(campaign_id)
        done = real(session, campaign_id, limit=limit)  # the batch's work, not committed yet
        if len(calls) == 2:
            raise RuntimeError("worker lost its database connection")
        return done

    monkeypatch.setattr(campaigns, "run_batch", crash_in_second_batch)
    r = client.post("/api/v1/campaigns/win-back", json=BODY, headers=admin)
    assert queue.drain() == ["run_campaign", "run_campaign"]  # failed once, retried once
    done = client.get(r.headers["Location"], headers=admin).json
    assert (done["status"], done["eligible"], done["attempts"], done["error"]) == (
        "done",
        8,
        2,
        None,
    )
    per_member, held = _issued(app)
    assert sum(per_member.values()) + held == 8 and max(per_member.values()) == 1
    assert sum(per_member.values()) == done["issued"]


def test_a_campaign_whose_worker_died_is_picked_up_by_the_sweep_and_issues_nothing_twice(
    app, client, admin, lapsed, queue, age
) -> None:
    r = client.post("/api/v1/campaigns/win-back", json=BODY, headers=admin)
    queue.huey.flush()  # its job is lost
    campaign_id = r.json["id"]
    with app.app_context():  # a worker ran the first batch, committed it, and died
        assert campaigns.start(db.session(), campaign_id, max_attempts=5)
        assert not campaigns.run_batch(db.session(), campaign_id, limit=3)
        db.session.commit()
        db.session.execute(  # and even its cursor is lost
            update(Campaign).where(Campaign.id == campaign_id).values(last_member_id=None)
        )
        db.session.commit()
    assert sum(_issued(app)[0].values()) + _issued(app)[1] == 3

    assert queue.run_periodic("campaign_sweep") == ["campaign_sweep"]  # within the grace
    age(Campaign, 61)
    assert queue.run_periodic("campaign_sweep") == ["campaign_sweep", "run_campaign"]
    done = client.get(r.headers["Location"], headers=admin).json
    assert (done["status"], done["eligible"], done["attempts"]) == ("done", 8, 2)
    per_member, held = _issued(app)
    assert sum(per_member.values()) + held == 8 and max(per_member.values()) == 1
    assert queue.run_periodic("campaign_sweep") == ["campaign_sweep"]  # done: left alone


def test_a_campaign_failing_every_time_ends_failed_after_its_attempts(
    app, client, admin, lapsed, queue, monkeypatch, age
) -> None:
    def broken(session, campaign_id, *, limit):
        raise RuntimeError("broken")

    monkeypatch.setattr(campaigns, "run_batch", broken)
    monkeypatch.setitem(app.config, "LOYALTY_CAMPAIGN_MAX_ATTEMPTS", 3)
    r = client.post("/api/v1/campaigns/win-back", json=BODY, headers=admin)
    assert queue.drain() == ["run_campaign"] * 3  # the job and its 2 retries
    age(Campaign, 61)
    assert queue.run_periodic("campaign_sweep") == ["campaign_sweep", "run_campaign"]
    failed = client.get(r.headers["Location"], headers=admin).json
    assert (failed["status"], failed["attempts"]) == ("failed", 4)
    assert "broken" in failed["error"] and failed["finished_at"] is not None
    assert _issued(app) == (Counter(), 0)


@pytest.mark.postgres
def test_two_jobs_running_the_same_campaign_at_once_issue_nothing_twice(
    app, client, admin, lapsed, queue
) -> None:
    """The sweep may hand a campaign to a second job while the first still runs: the batches
    take the campaign's row lock in turn and each goes on from the cursor the other left."""
    r = client.post("/api/v1/campaigns/win-back", json=BODY, headers=admin)
    queue.huey.flush()
    start = threading.Barrier(2)

    def run() -> str:
        start.wait()
        return queue.jobs.run_here("run_campaign", r.json["id"])

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: run(), range(2)))
    assert set(outcomes) <= {"done", "nothing to run"}
    done = client.get(r.headers["Location"], headers=admin).json
    assert (done["status"], done["eligible"]) == ("done", 8)
    per_member, held = _issued(app)
    assert sum(per_member.values()) + held == 8 and max(per_member.values()) == 1
