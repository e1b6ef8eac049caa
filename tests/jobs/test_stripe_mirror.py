"""The Stripe mirror as a job (a coupon and a promotion code whose customer-facing code is the
voucher's): marked pending in the request, written by the job after the commit, found again by
the sweep when its enqueue was lost; Stripe calls time out and are retried a bounded number of
times. In both queue modes (SQLite file, Redis). localstripe has no promotion codes: they are
taught to it from Stripe's documented API in tests/stripe_server.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
import stripe
from sqlalchemy import select

from loyalty.extensions import db
from loyalty.integrations import stripe as stripe_integration
from loyalty.jobs import tasks as job_tasks
from loyalty.models import Voucher
from loyalty.models.types import utcnow

GOODWILL = {"kind": "amount", "value": 500, "valid_days": 30, "reason": "complaint"}


@pytest.fixture
def member(client, pos) -> dict:
    return client.post(
        "/api/v1/members", json={"name": "Ann", "email": "ann@example.com"}, headers=pos
    ).json


def _promotion_codes(stripe_client: stripe.StripeClient, code: str) -> list:
    """Stripe's promotion codes whose customer-facing code is `code`, active or not."""
    return list(stripe_client.v1.promotion_codes.list(params={"code": code}).data)


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
    [promo] = _promotion_codes(stripe_on, code)
    assert (promo.code, promo.active, promo.promotion["coupon"]) == (code, True, code)
    assert _voucher(app, code).stripe_promotion_code_id == promo.id
    assert client.get(f"/api/v1/vouchers/{code}", headers=pos).json["stripe_status"] == "synced"

    used = client.post(
        f"/api/v1/vouchers/{code}/redeem",
        json={"order_ref": "o-1", "amount": 2000, "currency": "EUR"},
        headers=pos,
    )
    assert (used.status_code, used.json["voucher"]["stripe_status"]) == (200, "pending")
    stripe_on.v1.coupons.retrieve(code)  # still there until the job runs
    assert _promotion_codes(stripe_on, code)[0].active is True
    assert queue.drain() == ["stripe_mirror"]
    with pytest.raises(stripe.InvalidRequestError):
        stripe_on.v1.coupons.retrieve(code)
    assert [p.active for p in _promotion_codes(stripe_on, code)] == [False]
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

    def create_after_the_till_used_it(stripe_client, call) -> str:
        used = client.post(
            f"/api/v1/vouchers/{code}/redeem",
            json={"order_ref": "o-1", "amount": 2000, "currency": "EUR"},
            headers=pos,
        )
        assert used.status_code == 200
        assert queue.drain() == ["stripe_mirror"]  # the redeem's job: no coupon to delete yet
        return real_create(stripe_client, call)

    monkeypatch.setattr(stripe_integration, "_create", create_after_the_till_used_it)
    assert queue.drain() == ["stripe_mirror"]
    monkeypatch.undo()
    stripe_on.v1.coupons.retrieve(code)  # the slow job's coupon, of a used voucher
    [promo] = _promotion_codes(stripe_on, code)
    assert promo.active is True
    voucher = _voucher(app, code)  # pending, and the promotion code's id is kept for the sweep
    assert (voucher.stripe_status, voucher.stripe_promotion_code_id) == ("pending", promo.id)

    age(Voucher, 61)
    assert queue.run_periodic("stripe_sweep") == ["stripe_sweep", "stripe_mirror"]
    with pytest.raises(stripe.InvalidRequestError):
        stripe_on.v1.coupons.retrieve(code)
    assert [p.active for p in _promotion_codes(stripe_on, code)] == [False]
    assert _voucher(app, code).stripe_status == "deleted"


def test_a_voucher_valid_only_from_tomorrow_is_mirrored_when_it_becomes_valid(
    app, client, admin, member, queue, stripe_on
) -> None:
    """Stripe's promotion codes have no start: a voucher valid from a later time (a come-back
    voucher is valid from the next midnight) is `scheduled`, with nothing in Stripe a customer
    could type, until the sweep finds it valid."""
    r = client.post(f"/api/v1/members/{member['id']}/vouchers", json=GOODWILL, headers=admin)
    code = r.json["code"]
    with app.app_context():  # as a come-back voucher: valid from tomorrow
        voucher = db.session.scalar(select(Voucher))
        voucher.valid_from = utcnow() + timedelta(hours=10)
        db.session.commit()
    assert queue.drain() == ["stripe_mirror"]
    assert _voucher(app, code).stripe_status == "scheduled"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_on.v1.coupons.retrieve(code)
    assert _promotion_codes(stripe_on, code) == []
    assert queue.run_periodic("stripe_sweep") == ["stripe_sweep"]  # not yet

    with app.app_context():  # its day has come
        voucher = db.session.scalar(select(Voucher))
        voucher.valid_from = utcnow() - timedelta(minutes=1)
        db.session.commit()
    assert queue.run_periodic("stripe_sweep") == ["stripe_sweep", "stripe_mirror"]
    assert _voucher(app, code).stripe_status == "synced"
    assert [p.active for p in _promotion_codes(stripe_on, code)] == [True]


def test_a_promotion_code_created_but_not_recorded_is_found_not_made_twice(
    app, client, admin, member, queue, stripe_on
) -> None:
    """A job that died after Stripe created the promotion code, before it recorded the id: the
    next try finds the active code (a code is unique among active ones) and records that one."""
    r = client.post(f"/api/v1/members/{member['id']}/vouchers", json=GOODWILL, headers=admin)
    code = r.json["code"]
    queue.drain()
    [promo] = _promotion_codes(stripe_on, code)
    with app.app_context():  # as if the id had never been recorded
        voucher = db.session.scalar(select(Voucher))
        voucher.stripe_status, voucher.stripe_promotion_code_id = "pending", None
        voucher_id = voucher.id
        db.session.commit()
        assert stripe_integration.mirror(
            db.session(), stripe_integration.StripeConfig.from_mapping(app.config), [voucher_id]
        ) == {"created": 1, "deleted": 0, "scheduled": 0, "failed": 0}
    assert [p.id for p in _promotion_codes(stripe_on, code)] == [promo.id]
    assert _voucher(app, code).stripe_promotion_code_id == promo.id


def test_vouchers_mirrored_before_promotion_codes_get_one_from_the_sweep(
    app, client, admin, member, queue, stripe_on, monkeypatch
) -> None:
    """A voucher synced as a coupon alone (mirrored before promotion codes were): the sweep
    adds its promotion code, and a failed try is retried until it is there."""

    def coupon_only(stripe_client, call) -> None:
        stripe_integration._create_coupon(stripe_client, call.create)

    monkeypatch.setattr(stripe_integration, "_create", coupon_only)
    r = client.post(f"/api/v1/members/{member['id']}/vouchers", json=GOODWILL, headers=admin)
    code = r.json["code"]
    queue.drain()
    monkeypatch.undo()
    voucher = _voucher(app, code)
    assert (voucher.stripe_status, voucher.stripe_promotion_code_id) == ("synced", None)
    assert _promotion_codes(stripe_on, code) == []

    calls = []

    def down_once(stripe_client, params) -> str:
        calls.append(params["code"])
        raise stripe.APIConnectionError("Stripe is down")

    monkeypatch.setattr(stripe_integration, "_create_promotion_code", down_once)
    assert queue.run_periodic("stripe_sweep") == ["stripe_sweep"] + ["stripe_mirror"] * 3
    assert calls == [code] * 3  # the job and its 2 retries
    voucher = _voucher(app, code)
    assert voucher.stripe_status == "pending" and "Stripe is down" in voucher.stripe_error
    monkeypatch.undo()
    with app.app_context():
        job_tasks.stripe_sync()
    [promo] = _promotion_codes(stripe_on, code)
    voucher = _voucher(app, code)
    assert (voucher.stripe_status, voucher.stripe_promotion_code_id) == ("synced", promo.id)
    stripe_on.v1.coupons.retrieve(code)  # the coupon was there all along
