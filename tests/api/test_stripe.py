"""Stripe, with the real `stripe` library against localstripe on loopback; webhooks signed the
way Stripe signs them (t=…,v1=HMAC-SHA256 of "t.payload")."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
import stripe
from sqlalchemy import select
from werkzeug.serving import make_server

from loyalty.extensions import db
from loyalty.models import Purchase, Return, Voucher
from tests import stripe_server

SECRET = "whsec_loyalty_test"


@pytest.fixture
def stripe_on(app, localstripe_url) -> Iterator[stripe.StripeClient]:
    stripe_server.clear(localstripe_url)
    app.config.update(
        STRIPE_API_KEY="sk_test_loyalty",
        STRIPE_WEBHOOK_SECRET=SECRET,
        STRIPE_API_BASE=localstripe_url,
    )
    yield stripe.StripeClient(
        "sk_test_loyalty", base_addresses={"api": localstripe_url}, max_network_retries=0
    )
    app.config.update(STRIPE_API_KEY=None, STRIPE_WEBHOOK_SECRET=None, STRIPE_API_BASE=None)


@pytest.fixture
def member(client, pos) -> dict:
    return client.post(
        "/api/v1/members", json={"name": "Ann", "email": "ann@example.com"}, headers=pos
    ).json


def sign(payload: bytes, secret: str = SECRET, at: int | None = None) -> str:
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def post_event(client, event: dict, **sign_kwargs):
    payload = json.dumps(event).encode()
    return client.post(
        "/api/v1/stripe/webhook",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": sign(payload, **sign_kwargs)},
    )


def goodwill(client, admin, member, **fields) -> dict:
    body = {"kind": "amount", "value": 500, "valid_days": 30, "reason": "complaint", **fields}
    return client.post(f"/api/v1/members/{member['id']}/vouchers", json=body, headers=admin).json


def test_a_voucher_is_mirrored_as_a_coupon_and_deleted_when_used(
    client, admin, pos, member, stripe_on
) -> None:
    v = goodwill(client, admin, member)
    coupon = stripe_on.v1.coupons.retrieve(v["code"])
    assert (coupon.amount_off, coupon.currency, coupon.duration) == (500, "eur", "once")
    assert (
        client.get(f"/api/v1/vouchers/{v['code']}", headers=pos).json["stripe_status"] == "synced"
    )
    pct = goodwill(client, admin, member, kind="percent", value=15)
    assert stripe_on.v1.coupons.retrieve(pct["code"]).percent_off == 15
    client.post(
        f"/api/v1/vouchers/{v['code']}/redeem",
        json={"order_ref": "o", "amount": 2000, "currency": "EUR"},
        headers=pos,
    )
    with pytest.raises(stripe.InvalidRequestError):
        stripe_on.v1.coupons.retrieve(v["code"])
    assert (
        client.get(f"/api/v1/vouchers/{v['code']}", headers=pos).json["stripe_status"] == "deleted"
    )


def test_a_stripe_outage_does_not_block_issuing_and_stripe_sync_catches_up(
    app, client, admin, runner, member, stripe_on
) -> None:
    real_base = app.config["STRIPE_API_BASE"]
    app.config["STRIPE_API_BASE"] = (
        f"http://127.0.0.1:{stripe_server.free_port()}"  # nothing listens
    )
    r = client.post(
        f"/api/v1/members/{member['id']}/vouchers",
        json={"kind": "amount", "value": 300, "valid_days": 10, "reason": "x"},
        headers=admin,
    )
    assert r.status_code == 201
    with app.app_context():
        v = db.session.scalar(select(Voucher))
        assert v.stripe_status == "pending" and v.stripe_error
    out = runner.invoke(args=["loyalty", "stripe-sync"])
    assert out.exit_code == 1 and "1 failed" in out.output
    app.config["STRIPE_API_BASE"] = real_base
    out = runner.invoke(args=["loyalty", "stripe-sync"])
    assert out.exit_code == 0 and "1 created" in out.output
    assert stripe_on.v1.coupons.retrieve(r.json["code"]).amount_off == 300


def test_a_signed_payment_from_localstripe_becomes_a_purchase_with_points(
    app, client, member, stripe_on, localstripe_url
) -> None:
    port = stripe_server.free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        data = urllib.parse.urlencode(
            {"url": f"http://127.0.0.1:{port}/api/v1/stripe/webhook", "secret": SECRET}
        ).encode()
        urllib.request.urlopen(f"{localstripe_url}/_config/webhooks/loyalty", data=data, timeout=5)
        pm = stripe_on.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {
                    "number": "4242424242424242",
                    "exp_month": 12,
                    "exp_year": 2030,
                    "cvc": "123",
                },
            }
        )
        pi = stripe_on.v1.payment_intents.create(
            params={
                "amount": 4599,
                "currency": "eur",
                "payment_method": pm.id,
                "confirm": True,
                "metadata": {"loyalty_card_number": member["card_number"]},
            }
        )
        assert pi.status == "succeeded"
        deadline = time.monotonic() + 15
        purchase = None
        while purchase is None and time.monotonic() < deadline:
            time.sleep(0.2)
            with app.app_context():
                purchase = db.session.scalar(select(Purchase).where(Purchase.external_id == pi.id))
        assert purchase is not None, "localstripe's webhook did not arrive"
        assert (purchase.amount, purchase.points_earned) == (4599, 45)
    finally:
        server.shutdown()
        thread.join(timeout=10)


def payment_event(
    member: dict, event_id: str = "evt_1", pi: str = "pi_1", amount: int = 5000, **extra
) -> dict:
    return {
        "id": event_id,
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": pi,
                "object": "payment_intent",
                "amount": amount,
                "amount_received": amount,
                "currency": "eur",
                "created": int(time.time()),
                "metadata": {"loyalty_member_id": str(member["id"])},
                **extra,
            }
        },
    }


def test_the_same_event_delivered_twice_counts_once(app, client, pos, member, stripe_on) -> None:
    first = post_event(client, payment_event(member))
    again = post_event(client, payment_event(member))
    assert first.status_code == again.status_code == 200
    assert first.json["outcome"].startswith("purchase") and again.json["outcome"] == "duplicate"
    assert (
        client.get(f"/api/v1/members/{member['id']}", headers=pos).json["balance"]["points"] == 50
    )


def test_a_signed_refund_event_becomes_a_return(app, client, pos, member, stripe_on) -> None:
    post_event(client, payment_event(member, amount=5000))
    refund = {
        "id": "evt_2",
        "type": "charge.refunded",
        "data": {
            "object": {
                "id": "ch_1",
                "object": "charge",
                "payment_intent": "pi_1",
                "amount_refunded": 2000,
                "refunds": {"data": [{"id": "re_1", "amount": 2000}]},
            }
        },
    }
    r = post_event(client, refund)
    assert r.status_code == 200 and r.json["outcome"].startswith("return")
    with app.app_context():
        ret = db.session.scalar(select(Return))
        assert (ret.external_id, ret.amount, ret.points_reversed) == ("re_1", 2000, 20)
    assert (
        client.get(f"/api/v1/members/{member['id']}", headers=pos).json["balance"]["points"] == 30
    )


def test_a_payment_with_our_coupon_marks_the_voucher_used(
    client, admin, pos, member, stripe_on
) -> None:
    v = goodwill(client, admin, member)
    post_event(client, payment_event(member, discounts=[{"coupon": {"id": v["code"]}}]))
    assert client.get(f"/api/v1/vouchers/{v['code']}", headers=pos).json["status"] == "used"


def test_a_payment_matched_by_the_payers_email(client, pos, member, stripe_on) -> None:
    """The e-mail the event carries (receipt_email); a bare customer id is not looked up at
    Stripe during the request."""
    event = payment_event(member)
    event["data"]["object"]["metadata"] = {}
    event["data"]["object"]["receipt_email"] = "ANN@example.com"
    assert post_event(client, event).json["outcome"].startswith("purchase")
    by_id = payment_event(member, event_id="evt_8", pi="pi_8")
    by_id["data"]["object"]["metadata"] = {}
    by_id["data"]["object"]["customer"] = "cus_unknown_here"
    assert post_event(client, by_id).json["outcome"] == "ignored: no member"
    unknown = payment_event(member, event_id="evt_9", pi="pi_9")
    unknown["data"]["object"]["metadata"] = {}
    assert post_event(client, unknown).json["outcome"] == "ignored: no member"


def test_forged_and_stale_signatures_are_refused(client, member, stripe_on) -> None:
    r = post_event(client, payment_event(member), secret="whsec_wrong")
    assert (r.status_code, r.json["code"]) == (400, "invalid_signature")
    r = post_event(client, payment_event(member), at=int(time.time()) - 301)
    assert (r.status_code, r.json["code"]) == (400, "invalid_signature")
    r = client.post("/api/v1/stripe/webhook", data=b"{}", content_type="application/json")
    assert r.status_code == 400


def test_unknown_event_types_are_acknowledged(client, stripe_on) -> None:
    r = post_event(client, {"id": "evt_x", "type": "customer.created", "data": {"object": {}}})
    assert (r.status_code, r.json["outcome"]) == (200, "ignored")


def test_without_stripe_configured_the_webhook_is_404(client) -> None:
    assert client.post("/api/v1/stripe/webhook", data=b"{}").status_code == 404


def test_a_voided_voucher_loses_its_coupon(client, admin, member, stripe_on) -> None:
    v = goodwill(client, admin, member)
    assert stripe_on.v1.coupons.retrieve(v["code"]).amount_off == 500
    client.post(
        f"/api/v1/vouchers/{v['code']}/void", json={"reason": "issued twice"}, headers=admin
    )
    with pytest.raises(stripe.InvalidRequestError):
        stripe_on.v1.coupons.retrieve(v["code"])
