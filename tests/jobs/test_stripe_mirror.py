"""The Stripe coupon mirror as a job: marked pending in the request, written by the job after the
commit, found again by the sweep when its enqueue was lost; Stripe calls time out and are
retried a bounded number of times. In both queue modes (SQLite file, Redis)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import stripe
from sqlalchemy import select

from loyalty.extensions import db
from loyalty.integrations import stripe as stripe_integration
from loyalty.models import Voucher
from loyalty.models.types import utcnow

GOODWILL = {"kind": "amount", "value": 500, "valid_days": 30, "reason": "complaint"}


@pytest.fixture
def member(client, pos) -> dict:
    return client.post(
        "/api/v1/members", json={"name": "Ann", "email": "ann@example.com"}, headers=pos
    ).json


def _voucher(app, code: str) -> Voucher:
    with app.app_context():
        voucher = db.session.scalar(select(Voucher).where(Voucher.code == code.replace("-", "")))
        db.session.expunge(voucher)
        return voucher


def test_a_voucher_issued_with_stripe_on_is_mirrored_by_the_job_after_the_request(
    app, client, admin, pos, member, queue, stripe_on
) -> None:
    r = client.post(f"/api/v1/members/{member['id']}/vouchers", json=GOODWILL, headers=admin)
    assert (r.status_code, r.json["stripe_status"]) == (201, "pending")
    code = r.json["code"]
    with pytest.raises(stripe.InvalidRequestError):  # the request made no Stripe call
        stripe_on.v1.coupons.retrieve(code)
    assert queue.names() == ["stripe_mirror"]

    assert queue.drain() == ["stripe_mirror"]
    coupon = stripe_on.v1.coupons.retrieve(code)
    assert (coupon.amount_off, coupon.currency, coupon.duration) == (500, "eur", "once")
    assert client.get(f"/api/v1/vouchers/{code}", headers=pos).json["stripe_status"] == "synced"

    used = client.post(
        f"/api/v1/vouchers/{code}/redeem",
        json={"order_ref": "o-1", "amount": 2000, "currency": "EUR"},
        headers=pos,
    )
    assert (used.status_code, used.json["voucher"]["stripe_status"]) == (200, "pending")
    stripe_on.v1.coupons.retrieve(code)  # still there until the job runs
    assert queue.drain() == ["stripe_mirror"]
    with pytest.raises(stripe.InvalidRequestError):
        stripe_on.v1.coupons.retrieve(code)
    assert _voucher(app, code).stripe_status == "deleted"


def test_without_stripe_no_voucher_is_marked_and_no_job_is_queued(
    client, admin, member, queue
) -> None:
    r = client.post(f"/api/v1/members/{member['id']}/vouchers", json=GOODWILL, headers=admin)
    assert (r.status_code, r.json["stripe_status"]) == (201, None)
    assert queue.names() == []


def test_a_lost_enqueue_is_picked_up_by_the_sweep(
    app, client, admin, member, queue, stripe_on, age, monkeypatch
) -> None:
    def queue_down(*_args) -> None:
        raise ConnectionError("the queue is down")

    monkeypatch.setattr(queue.jobs, "enqueue", queue_down)
    r = client.post(f"/api/v1/members/{member['id']}/vouchers", json=GOODWILL, headers=admin)
    assert (r.status_code, r.json["stripe_status"]) == (201, "pending")  # committed all the same
    monkeypatch.undo()
    assert queue.names() == []

    assert queue.run_periodic("stripe_sweep") == ["stripe_sweep"]  # within the grace: left
    assert _voucher(app, r.json["code"]).stripe_status == "pending"

    age(Voucher, 61)  # LOYALTY_JOB_GRACE_SECONDS is 60
    assert queue.run_periodic("stripe_sweep") == ["stripe_sweep", "stripe_mirror"]
    assert _voucher(app, r.json["code"]).stripe_status == "synced"
    assert stripe_on.v1.coupons.retrieve(r.json["code"]).amount_off == 500
    assert queue.run_periodic("stripe_sweep") == ["stripe_sweep"]  # nothing due any more


def test_a_stripe_timeout_leaves_the_voucher_pending_after_bounded_retries(
    app, client, admin, member, queue, stripe_on, silent_server, age
) -> None:
    url, accepted = silent_server
    real_base = app.config["STRIPE_API_BASE"]
    app.config.update(STRIPE_API_BASE=url, STRIPE_TIMEOUT_SECONDS=0.3)
    r = client.post(f"/api/v1/members/{member['id']}/vouchers", json=GOODWILL, headers=admin)
    assert r.status_code == 201

    # LOYALTY_JOB_RETRIES=2: the job runs 3 times; each try is 1 call + 1 network retry
    assert queue.drain() == ["stripe_mirror"] * 3
    assert accepted[0] == 3 * 2
    voucher = _voucher(app, r.json["code"])
    assert voucher.stripe_status == "pending" and "timed out" in voucher.stripe_error.lower()
    assert (queue.names(), queue.huey.scheduled_count()) == ([], 0)  # no retry left

    app.config.update(STRIPE_API_BASE=real_base)  # Stripe is back: the sweep finishes the job
    age(Voucher, 61)
    assert queue.run_periodic("stripe_sweep") == ["stripe_sweep", "stripe_mirror"]
    voucher = _voucher(app, r.json["code"])
    assert (voucher.stripe_status, voucher.stripe_error) == ("synced", None)


def test_the_sweep_deletes_the_coupons_of_expired_vouchers(
    app, client, admin, member, queue, stripe_on
) -> None:
    r = client.post(f"/api/v1/members/{member['id']}/vouchers", json=GOODWILL, headers=admin)
    queue.drain()
    assert _voucher(app, r.json["code"]).stripe_status == "synced"
    with app.app_context():  # its validity ends
        voucher = db.session.scalar(select(Voucher))
        voucher.valid_from = utcnow() - timedelta(days=40)
        voucher.valid_until = utcnow() - timedelta(days=10)
        db.session.commit()
    assert queue.run_periodic("stripe_sweep") == ["stripe_sweep", "stripe_mirror"]
    with pytest.raises(stripe.InvalidRequestError):
        stripe_on.v1.coupons.retrieve(r.json["code"])
    assert _voucher(app, r.json["code"]).stripe_status == "deleted"


def test_stripe_sync_runs_the_sweep_once_from_the_command_line(
    app, client, admin, member, runner, queue, stripe_on, monkeypatch
) -> None:
    monkeypatch.setattr(queue.jobs, "enqueue", lambda *_a: None)  # every enqueue lost
    for _ in range(3):
        client.post(f"/api/v1/members/{member['id']}/vouchers", json=GOODWILL, headers=admin)
    out = runner.invoke(args=["loyalty", "stripe-sync"])
    assert out.exit_code == 0 and "3 created, 0 deleted, 0 failed" in out.output
    with app.app_context():
        assert set(db.session.scalars(select(Voucher.stripe_status))) == {"synced"}


def test_a_voucher_used_during_its_coupon_call_still_loses_its_coupon(
    app, client, admin, pos, member, queue, stripe_on, age, monkeypatch
) -> None:
    """The job creating the coupon is slow; meanwhile the till uses the voucher and that
    transaction's own job runs first (nothing to delete yet). The slow job must not record its
    coupon as the voucher's state: it leaves the voucher pending, and the sweep deletes it."""
    r = client.post(f"/api/v1/members/{member['id']}/vouchers", json=GOODWILL, headers=admin)
    code = r.json["code"]
    real_create = stripe_integration._create

    def create_after_the_till_used_it(stripe_client, params) -> None:
        used = client.post(
            f"/api/v1/vouchers/{code}/redeem",
            json={"order_ref": "o-1", "amount": 2000, "currency": "EUR"},
            headers=pos,
        )
        assert used.status_code == 200
        assert queue.drain() == ["stripe_mirror"]  # the redeem's job: no coupon to delete yet
        real_create(stripe_client, params)

    monkeypatch.setattr(stripe_integration, "_create", create_after_the_till_used_it)
    assert queue.drain() == ["stripe_mirror"]
    monkeypatch.undo()
    stripe_on.v1.coupons.retrieve(code)  # the slow job's coupon, of a used voucher
    assert _voucher(app, code).stripe_status == "pending"

    age(Voucher, 61)
    assert queue.run_periodic("stripe_sweep") == ["stripe_sweep", "stripe_mirror"]
    with pytest.raises(stripe.InvalidRequestError):
        stripe_on.v1.coupons.retrieve(code)
    assert _voucher(app, code).stripe_status == "deleted"
