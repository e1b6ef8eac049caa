"""Stripe, with the real `stripe` library against localstripe on loopback; webhooks signed the
way Stripe signs them (t=…,v1=HMAC-SHA256 of "t.payload").

localstripe has coupons, payment intents and webhooks, but neither promotion codes nor Checkout
Sessions. Promotion codes are taught to it in tests/stripe_server.py (Stripe's documented
create / update / list); the `checkout.session.completed` events below are built from the
Checkout Session object of Stripe's API reference (version 2026-10-28, as the `stripe` library
types it in stripe/checkout/_session.py: `discounts` of `{coupon, promotion_code}`,
`amount_subtotal` before and `amount_total` after discounts, `payment_intent`, `payment_status`,
`customer_details`, `metadata`) and signed as Stripe signs them.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from werkzeug.serving import make_server

from loyalty.api.body import strict_loads
from loyalty.extensions import db
from loyalty.integrations import stripe_events
from loyalty.models import Purchase, Return, StripeEvent, Voucher
from tests import stripe_server

SECRET = "whsec_loyalty_test"
OUTCOME_STATUSES = {"processed", "duplicate", "ignored", "rejected"}


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
def webhook_only(app) -> Iterator[None]:
    """The webhook secret without an API key: events are handled, nothing is mirrored."""
    app.config.update(STRIPE_WEBHOOK_SECRET=SECRET)
    yield
    app.config.update(STRIPE_WEBHOOK_SECRET=None)


@pytest.fixture
def member(client, pos) -> dict:
    return client.post(
        "/api/v1/members", json={"name": "Ann", "email": "ann@example.com"}, headers=pos
    ).json


def sign(payload: bytes, secret: str = SECRET, at: int | None = None) -> str:
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def post_raw(client, payload: bytes, **sign_kwargs):
    return client.post(
        "/api/v1/stripe/webhook",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": sign(payload, **sign_kwargs)},
    )


def post_event(client, event: Any, **sign_kwargs):
    return post_raw(client, json.dumps(event).encode(), **sign_kwargs)


def goodwill(client, admin, member, **fields) -> dict:
    body = {"kind": "amount", "value": 500, "valid_days": 30, "reason": "complaint", **fields}
    return client.post(f"/api/v1/members/{member['id']}/vouchers", json=body, headers=admin).json


def voucher_row(app, code: str) -> Voucher:
    with app.app_context():
        voucher = db.session.scalar(select(Voucher).where(Voucher.code == code.replace("-", "")))
        db.session.expunge(voucher)
        return voucher


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def points(client, pos, member) -> int:
    return client.get(f"/api/v1/members/{member['id']}", headers=pos).json["balance"]["points"]


def promotion_code(stripe_client: stripe.StripeClient, code: str) -> Any:
    """The promotion code whose customer-facing code is `code` (active or not)."""
    found = stripe_client.v1.promotion_codes.list(params={"code": code}).data
    assert len(found) == 1, found
    return found[0]


def payment_event(
    member: dict, event_id: str = "evt_1", pi: str = "pi_1", amount: int = 5000, **extra
) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
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


def _whole(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def checkout_event(
    metadata: dict | None,
    *,
    event_id: str = "evt_cs_1",
    session_id: str = "cs_test_1",
    payment_intent: str | None = "pi_cs_1",
    subtotal: int = 5000,
    total: int = 4500,
    discounts: list | None = None,
    event_type: str = "checkout.session.completed",
    **extra,
) -> dict:
    """A Checkout Session event as Stripe documents it (the fields we read and their
    neighbours; Stripe sends more)."""
    now = int(time.time())
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": now,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {
            "object": {
                "id": session_id,
                "object": "checkout.session",
                "mode": "payment",
                "status": "complete",
                "payment_status": "paid",
                "payment_intent": payment_intent,
                "amount_subtotal": subtotal,
                "amount_total": total,
                "currency": "eur",
                "created": now - 60,
                "client_reference_id": None,
                "customer": None,
                "customer_email": None,
                "customer_details": {
                    "email": "someone@example.com",
                    "name": "Someone",
                    "phone": None,
                    "address": None,
                    "tax_exempt": "none",
                    "tax_ids": [],
                },
                "discounts": discounts or [],
                "metadata": metadata or {},
                "total_details": {
                    "amount_discount": subtotal - total if _whole(subtotal, total) else 0,
                    "amount_shipping": 0,
                    "amount_tax": 0,
                },
                **extra,
            }
        },
    }


# the mirror --------------------------------------------------------------------------------------
def test_a_voucher_is_mirrored_as_a_coupon_and_a_promotion_code_of_its_code(
    app, client, admin, pos, member, stripe_on
) -> None:
    v = goodwill(client, admin, member, min_spend=2000)
    coupon = stripe_on.v1.coupons.retrieve(v["code"])
    assert (coupon.amount_off, coupon.currency, coupon.duration) == (500, "eur", "once")
    promo = promotion_code(stripe_on, v["code"])
    assert (promo.code, promo.active, promo.max_redemptions) == (v["code"], True, 1)
    assert promo.promotion["coupon"] == v["code"]
    assert promo.restrictions["minimum_amount"] == 2000
    assert (
        promo.expires_at
        == int(coupon.redeem_by)
        == int(voucher_row(app, v["code"]).valid_until.timestamp())
    )
    assert voucher_row(app, v["code"]).stripe_promotion_code_id == promo.id
    assert (
        client.get(f"/api/v1/vouchers/{v['code']}", headers=pos).json["stripe_status"] == "synced"
    )
    pct = goodwill(client, admin, member, kind="percent", value=15)
    assert stripe_on.v1.coupons.retrieve(pct["code"]).percent_off == 15
    assert promotion_code(stripe_on, pct["code"]).active is True


def test_a_used_voucher_loses_its_coupon_and_its_promotion_code_is_deactivated(
    client, admin, pos, member, stripe_on
) -> None:
    v = goodwill(client, admin, member)
    r = client.post(
        f"/api/v1/vouchers/{v['code']}/redeem",
        json={"order_ref": "o", "amount": 2000, "currency": "EUR"},
        headers=pos,
    )
    assert r.status_code == 200
    with pytest.raises(stripe.InvalidRequestError):
        stripe_on.v1.coupons.retrieve(v["code"])
    assert promotion_code(stripe_on, v["code"]).active is False
    assert (
        client.get(f"/api/v1/vouchers/{v['code']}", headers=pos).json["stripe_status"] == "deleted"
    )


def test_a_voided_voucher_loses_its_coupon_and_its_promotion_code_is_deactivated(
    client, admin, member, stripe_on
) -> None:
    v = goodwill(client, admin, member)
    assert stripe_on.v1.coupons.retrieve(v["code"]).amount_off == 500
    r = client.post(
        f"/api/v1/vouchers/{v['code']}/void", json={"reason": "issued twice"}, headers=admin
    )
    assert r.status_code == 200
    with pytest.raises(stripe.InvalidRequestError):
        stripe_on.v1.coupons.retrieve(v["code"])
    assert promotion_code(stripe_on, v["code"]).active is False


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
    assert promotion_code(stripe_on, r.json["code"]).active is True


# payments ----------------------------------------------------------------------------------------
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


def test_the_same_event_delivered_twice_counts_once(app, client, pos, member, stripe_on) -> None:
    first = post_event(client, payment_event(member))
    again = post_event(client, payment_event(member))
    assert first.status_code == again.status_code == 200
    assert (first.json["status"], first.json["outcome"]) == ("processed", "purchase 1 created")
    assert (again.json["status"], again.json["outcome"]) == ("duplicate", "duplicate")
    assert points(client, pos, member) == 50


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
                "currency": "eur",
                "amount_refunded": 2000,
                "refunds": {"data": [{"id": "re_1", "amount": 2000}]},
            }
        },
    }
    r = post_event(client, refund)
    assert (r.status_code, r.json["status"], r.json["outcome"]) == (
        200,
        "processed",
        "return 1 created",
    )
    with app.app_context():
        ret = db.session.scalar(select(Return))
        assert (ret.external_id, ret.amount, ret.points_reversed) == ("re_1", 2000, 20)
    assert points(client, pos, member) == 30


def test_a_payment_with_voucher_codes_in_its_metadata_marks_them_used(
    app, client, admin, pos, member, stripe_on
) -> None:
    v = goodwill(client, admin, member)
    metadata = {"loyalty_member_id": str(member["id"]), "loyalty_voucher_codes": v["code"]}
    r = post_event(client, payment_event(member, metadata=metadata))
    assert r.json["outcome"] == f"purchase 1 created, vouchers used: {v['code']}"
    assert client.get(f"/api/v1/vouchers/{v['code']}", headers=pos).json["status"] == "used"
    assert voucher_row(app, v["code"]).used_purchase_id == 1


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
    r = post_event(client, by_id)
    assert (r.json["status"], r.json["outcome"], r.json["reason"]) == (
        "ignored",
        "ignored: no member",
        "no member",
    )
    unknown = payment_event(member, event_id="evt_9", pi="pi_9")
    unknown["data"]["object"]["metadata"] = {}
    assert post_event(client, unknown).json["outcome"] == "ignored: no member"


def test_a_payment_above_the_purchase_ceiling_is_acknowledged_as_rejected(
    app, client, member, stripe_on
) -> None:
    ceiling = app.config.get("LOYALTY_MAX_PURCHASE_AMOUNT", 10_000_000)
    r = post_event(client, payment_event(member, amount=ceiling + 1))
    assert (r.status_code, r.json["status"], r.json["reason"]) == (
        200,
        "rejected",
        "limit_exceeded",
    )
    assert count(app, Purchase) == 0


# Checkout Sessions -------------------------------------------------------------------------------
def test_a_checkout_session_with_a_promotion_code_records_the_purchase_and_uses_the_voucher(
    app, client, admin, pos, member, stripe_on
) -> None:
    v = goodwill(client, admin, member, kind="percent", value=10, min_spend=4000)
    promo = promotion_code(stripe_on, v["code"])
    event = checkout_event(
        {"loyalty_card_number": member["card_number"]},
        discounts=[{"coupon": None, "promotion_code": promo.id}],
    )
    r = post_event(client, event)
    assert (r.status_code, r.json["status"]) == (200, "processed")
    assert r.json["outcome"] == f"purchase 1 created, vouchers used: {v['code']}"
    with app.app_context():
        purchase = db.session.get(Purchase, 1)
        assert (purchase.external_id, purchase.amount, purchase.points_earned) == (
            "pi_cs_1",
            4500,
            45,
        )
    used = voucher_row(app, v["code"])
    # the percentage and the minimum spend apply to the basket before discounts, as in Stripe
    assert (used.status, used.used_purchase_id, used.used_order_ref) == ("used", 1, "pi_cs_1")
    assert used.discount_given == 500
    assert points(client, pos, member) == 45
    # the mirror follows: the promotion code can no longer be used
    assert promotion_code(stripe_on, v["code"]).active is False


def test_a_checkout_session_with_our_coupon_uses_the_voucher(
    app, client, admin, pos, member, stripe_on
) -> None:
    v = goodwill(client, admin, member)
    event = checkout_event(
        {"loyalty_member_id": str(member["id"])},
        discounts=[{"coupon": v["code"], "promotion_code": None}],
    )
    assert post_event(client, event).json["outcome"].endswith(f"vouchers used: {v['code']}")
    assert client.get(f"/api/v1/vouchers/{v['code']}", headers=pos).json["status"] == "used"


def test_a_checkout_session_is_recorded_once_whatever_the_events(
    app, client, admin, pos, member, stripe_on
) -> None:
    """Idempotent on the event id (a redelivery) and on the session (another event of it, and
    the payment_intent.succeeded of its PaymentIntent: one purchase, the voucher used once)."""
    v = goodwill(client, admin, member)
    promo = promotion_code(stripe_on, v["code"])
    metadata = {"loyalty_member_id": str(member["id"])}
    discounts = [{"coupon": None, "promotion_code": promo.id}]
    first = post_event(client, checkout_event(metadata, discounts=discounts))
    assert first.json["outcome"] == f"purchase 1 created, vouchers used: {v['code']}"
    assert post_event(client, checkout_event(metadata, discounts=discounts)).json == {
        "received": True,
        "status": "duplicate",
        "outcome": "duplicate",
        "reason": None,
    }
    other = post_event(client, checkout_event(metadata, event_id="evt_cs_2", discounts=discounts))
    assert other.json["outcome"] == f"purchase 1 exists, vouchers used: {v['code']}"
    intent = payment_event(member, event_id="evt_pi", pi="pi_cs_1", amount=4500)
    assert post_event(client, intent).json["outcome"] == "purchase 1 exists"
    assert (count(app, Purchase), points(client, pos, member)) == (1, 45)
    assert voucher_row(app, v["code"]).used_purchase_id == 1


def test_a_payment_intent_first_then_its_session_links_the_voucher_to_that_purchase(
    app, client, admin, member, stripe_on
) -> None:
    v = goodwill(client, admin, member)
    intent = payment_event(member, event_id="evt_pi", pi="pi_cs_1", amount=4500)
    assert post_event(client, intent).json["outcome"] == "purchase 1 created"
    event = checkout_event(
        {"loyalty_member_id": str(member["id"])},
        discounts=[{"promotion_code": voucher_row(app, v["code"]).stripe_promotion_code_id}],
    )
    assert post_event(client, event).json["outcome"] == (
        f"purchase 1 exists, vouchers used: {v['code']}"
    )
    assert (count(app, Purchase), voucher_row(app, v["code"]).used_purchase_id) == (1, 1)


def test_an_unpaid_session_waits_for_its_async_payment(
    app, client, admin, pos, member, stripe_on
) -> None:
    v = goodwill(client, admin, member)
    metadata = {"loyalty_member_id": str(member["id"])}
    discounts = [{"coupon": v["code"]}]
    unpaid = checkout_event(metadata, discounts=discounts, payment_status="unpaid")
    r = post_event(client, unpaid)
    assert (r.json["status"], r.json["reason"]) == ("ignored", "payment_status is unpaid, not paid")
    assert count(app, Purchase) == 0
    assert voucher_row(app, v["code"]).status == "active"
    paid = checkout_event(
        metadata,
        event_id="evt_cs_2",
        discounts=discounts,
        event_type="checkout.session.async_payment_succeeded",
    )
    assert post_event(client, paid).json["outcome"] == (
        f"purchase 1 created, vouchers used: {v['code']}"
    )


def test_a_guests_session_still_uses_the_voucher(app, client, admin, member, stripe_on) -> None:
    """Nobody in the metadata, an e-mail no member has: no purchase, but Stripe took the code,
    so the voucher is used all the same (the discount is on the basket before discounts)."""
    v = goodwill(client, admin, member)
    event = checkout_event(None, payment_intent=None, discounts=[{"coupon": v["code"]}])
    r = post_event(client, event)
    assert (r.json["status"], r.json["outcome"]) == (
        "processed",
        f"no member, vouchers used: {v['code']}",
    )
    used = voucher_row(app, v["code"])
    assert (used.status, used.used_purchase_id, used.used_order_ref, used.discount_given) == (
        "used",
        None,
        "cs_test_1",
        500,
    )
    assert count(app, Purchase) == 0


def test_a_voucher_used_at_a_till_meanwhile_is_reported_and_the_purchase_recorded(
    app, client, admin, pos, member, stripe_on
) -> None:
    v = goodwill(client, admin, member)
    till = client.post(
        f"/api/v1/vouchers/{v['code']}/redeem",
        json={"order_ref": "till-1", "amount": 2000, "currency": "EUR"},
        headers=pos,
    )
    assert till.status_code == 200
    event = checkout_event(
        {"loyalty_member_id": str(member["id"])}, discounts=[{"coupon": v["code"]}]
    )
    r = post_event(client, event)
    assert (r.status_code, r.json["status"]) == (200, "processed")
    assert r.json["outcome"] == f"purchase 1 created, vouchers refused: {v['code']} (voucher_used)"
    assert voucher_row(app, v["code"]).used_order_ref == "till-1"


def test_a_refused_purchase_still_uses_the_voucher_stripe_took(
    app, client, admin, member, stripe_on
) -> None:
    """The purchase is refused (above the ceiling): nothing of it is left, but the code was
    taken in Stripe, so the voucher is used (no purchase to link it to)."""
    v = goodwill(client, admin, member)
    ceiling = app.config.get("LOYALTY_MAX_PURCHASE_AMOUNT", 10_000_000)
    event = checkout_event(
        {"loyalty_member_id": str(member["id"])},
        subtotal=ceiling + 1000,
        total=ceiling + 500,
        discounts=[{"coupon": v["code"]}],
    )
    r = post_event(client, event)
    assert (r.json["status"], r.json["outcome"]) == (
        "processed",
        f"purchase rejected: limit_exceeded, vouchers used: {v['code']}",
    )
    assert count(app, Purchase) == 0
    used = voucher_row(app, v["code"])
    assert (used.status, used.used_purchase_id, used.used_order_ref) == ("used", None, "pi_cs_1")


def test_a_refund_beyond_the_purchase_is_acknowledged_as_rejected(
    app, client, pos, member, stripe_on
) -> None:
    post_event(client, payment_event(member, amount=1000))
    refund = {
        "id": "evt_r",
        "type": "charge.refunded",
        "data": {
            "object": {
                "id": "ch_1",
                "payment_intent": "pi_1",
                "refunds": {"data": [{"id": "re_1", "amount": 1500}]},
            }
        },
    }
    r = post_event(client, refund)
    assert (r.status_code, r.json["status"], r.json["reason"]) == (
        200,
        "rejected",
        "refund re_1 rejected: return_exceeds_purchase",
    )
    assert (count(app, Return), points(client, pos, member)) == (0, 10)


def test_discounts_that_are_not_our_vouchers_are_left_alone(app, client, member, stripe_on) -> None:
    event = checkout_event(
        {"loyalty_member_id": str(member["id"])},
        discounts=[{"coupon": "SUMMER10"}, {"promotion_code": "promo_not_ours"}],
    )
    assert post_event(client, event).json["outcome"] == "purchase 1 created"


def test_a_session_in_subscription_mode_is_ignored(app, client, member, stripe_on) -> None:
    event = checkout_event({"loyalty_member_id": str(member["id"])}, mode="subscription")
    r = post_event(client, event)
    assert (r.status_code, r.json["reason"]) == (200, "a Checkout Session in subscription mode")
    assert count(app, Purchase) == 0


def test_events_are_handled_without_the_mirror(app, client, member, webhook_only) -> None:
    """Only the webhook secret configured: a session is recorded, no Stripe call is made."""
    event = checkout_event({"loyalty_member_id": str(member["id"])})
    assert post_event(client, event).json["outcome"] == "purchase 1 created"


# signatures --------------------------------------------------------------------------------------
def test_forged_stale_and_future_signatures_are_refused(app, client, member, stripe_on) -> None:
    r = post_event(client, payment_event(member), secret="whsec_wrong")
    assert (r.status_code, r.json["code"]) == (400, "invalid_signature")
    r = post_event(client, payment_event(member), at=int(time.time()) - 301)
    assert (r.status_code, r.json["code"]) == (400, "invalid_signature")
    r = post_event(client, payment_event(member), at=int(time.time()) + 301)
    assert (r.status_code, r.json["code"]) == (400, "invalid_signature")
    assert "future" in r.json["detail"] and "Stripe-Signature" in r.json["errors"]
    r = client.post("/api/v1/stripe/webhook", data=b"{}", content_type="application/json")
    assert r.status_code == 400
    assert count(app, Purchase) == 0
    # within the tolerance either way: accepted
    assert post_event(client, payment_event(member), at=int(time.time()) + 250).status_code == 200
    ok = post_event(client, payment_event(member, "evt_2", "pi_2"), at=int(time.time()) - 250)
    assert ok.json["status"] == "processed"


def test_without_stripe_configured_the_webhook_is_404(client) -> None:
    assert client.post("/api/v1/stripe/webhook", data=b"{}").status_code == 404


# events we cannot use ----------------------------------------------------------------------------
def test_unknown_event_types_are_acknowledged(app, client, stripe_on) -> None:
    r = post_event(client, {"id": "evt_x", "type": "customer.created", "data": {"object": {}}})
    assert (r.status_code, r.json["status"], r.json["outcome"]) == (
        200,
        "ignored",
        "ignored: not handled",
    )
    with app.app_context():
        assert db.session.get(StripeEvent, "evt_x").outcome == "ignored: not handled"


def _without(event: dict, *path: str) -> dict:
    target = event
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return event


def _with(event: dict, value: Any, *path: str) -> dict:
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return event


MEMBER = {"id": 1}
OBJECT = ("data", "object")

UNUSABLE = {
    "missing data": (_without(payment_event(MEMBER), "data"), "data: Missing data"),
    "missing id": (_without(payment_event(MEMBER), "id"), "id: Missing data"),
    "null id": (_with(payment_event(MEMBER), None, "id"), "id: Field may not be null"),
    "numeric id": (_with(payment_event(MEMBER), 7, "id"), "id: Not a valid string"),
    "long id": (_with(payment_event(MEMBER), "e" * 300, "id"), "id: Length must be"),
    "data.object a list": (_with(payment_event(MEMBER), [], *OBJECT), "data.object: Not a valid"),
    "data.object null": (_with(payment_event(MEMBER), None, *OBJECT), "data.object: Field may"),
    "data a string": (_with(payment_event(MEMBER), "x", "data"), "data._schema: Invalid input"),
    "string amount": (
        payment_event(MEMBER, amount="5000"),  # type: ignore[arg-type]
        "data.object.amount: Not a valid integer",
    ),
    "negative amount": (payment_event(MEMBER, amount=-5), "data.object.amount: Must be greater"),
    "huge amount": (payment_event(MEMBER, amount=10**13), "data.object.amount: Must be greater"),
    "boolean amount": (
        payment_event(MEMBER, amount=True),  # type: ignore[arg-type]
        "data.object.amount: Not a valid integer",
    ),
    "fractional amount": (
        payment_event(MEMBER, amount=12.5),  # type: ignore[arg-type]
        "data.object.amount: Not a valid integer",
    ),
    "no amount": (
        _without(_without(payment_event(MEMBER), *OBJECT, "amount"), *OBJECT, "amount_received"),
        "data.object.amount: Missing data",
    ),
    "unknown currency": (
        _with(payment_event(MEMBER), "xyz", *OBJECT, "currency"),
        "data.object.currency: Not a known ISO 4217",
    ),
    "currency a number": (
        _with(payment_event(MEMBER), 978, *OBJECT, "currency"),
        "data.object.currency: Not a valid string",
    ),
    "created far away": (
        _with(payment_event(MEMBER), 10**15, *OBJECT, "created"),
        "data.object.created: Must be between",
    ),
    "metadata a list": (
        _with(payment_event(MEMBER), ["x"], *OBJECT, "metadata"),
        "data.object.metadata._schema: Invalid input",
    ),
    "member id not an id": (
        _with(payment_event(MEMBER), {"loyalty_member_id": "9" * 40}, *OBJECT, "metadata"),
        "data.object.metadata.loyalty_member_id: Not a member id",
    ),
    "discounts not a list": (
        payment_event(MEMBER, discounts="ABCD-EFGH-JK"),
        "data.object.discounts: Not a valid list",
    ),
    "session without amount_total": (
        _without(checkout_event(None), *OBJECT, "amount_total"),
        "data.object.amount_total: Missing data",
    ),
    "refund with a negative amount": (
        {
            "id": "evt_r",
            "type": "charge.refunded",
            "data": {"object": {"id": "ch", "refunds": {"data": [{"id": "re", "amount": -1}]}}},
        },
        "data.object.refunds.data.0.amount: Must be greater",
    ),
}


@pytest.mark.parametrize("case", list(UNUSABLE))
def test_a_signed_event_we_cannot_use_is_acknowledged_as_ignored_and_logged(
    app, client, member, stripe_on, caplog, case
) -> None:
    event, reason = UNUSABLE[case]
    with caplog.at_level(logging.WARNING, logger="loyalty.integrations.stripe"):
        r = post_event(client, json.loads(json.dumps(event)))
    assert (r.status_code, r.json["received"], r.json["status"]) == (200, True, "ignored")
    assert r.json["reason"].startswith(reason), r.json["reason"]
    assert r.json["outcome"] == f"ignored: {r.json['reason']}"
    assert reason in caplog.text
    assert count(app, Purchase) == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "the body is not JSON we take: "),
        (b"[1, 2]", "the body is not a JSON object"),
        (b'{"id": NaN}', "the body is not JSON we take: NaN is not a JSON number"),
        (b'{"amount": ' + b"9" * 5000 + b"}", "the body is not JSON we take: A number has more"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "the body is not JSON we take: The body is nested"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, "the body is not JSON we take: The body is nested"),
        (b'{"id": "evt_1", "id": "evt_2"}', "the body is not JSON we take: The key 'id' appears"),
        (b'{"id": "evt_\\u0000", "type": "x", "data": {"object": {}}}', "a string holds a NUL"),
        (b'{"id": "evt_\\ud800", "type": "x", "data": {"object": {}}}', "a string holds a NUL"),
    ],
)
def test_a_signed_body_that_is_not_an_event_is_acknowledged_as_ignored(
    app, client, stripe_on, body, reason
) -> None:
    r = post_raw(client, body)
    assert (r.status_code, r.json["status"]) == (200, "ignored")
    assert r.json["reason"].startswith(reason)
    assert count(app, StripeEvent) == 0


# fuzzing -----------------------------------------------------------------------------------------
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.sampled_from([-1, 0, 10**12, 10**12 + 1, 2**63, -(2**63), 10**30])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "eur", "xyz", "5000", "x" * 300, "\u00e9", "ABCD-EFGH-JK"])
)
#: the values that break a field most often: each type JSON has, and numbers out of range
EDGES = st.sampled_from(
    [None, True, -1, 0, 1.5, 10**12 + 1, 2**63, 10**30, "", "5000", "usd", "x" * 300, [], {}]
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
EVENT_TYPES = [
    "payment_intent.succeeded",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "charge.refunded",
]


#: the fields the webhook reads: mutated more often than the others
READ_FIELDS = {
    *("id", "type", "created", "data", "object", "currency", "metadata", "discounts", "coupon"),
    *("amount", "amount_received", "amount_total", "amount_subtotal", "amount_refunded"),
    *("promotion_code", "payment_intent", "payment_status", "mode", "refunds", "customer"),
    *("loyalty_member_id", "loyalty_card_number", "loyalty_voucher_codes", "receipt_email"),
    *("customer_details", "email"),
}


def _paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Every place in a JSON value: the paths of its members and items, nested."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    found = []
    for key, sub in items:
        found.append((*path, key))
        found += _paths(sub, (*path, key))
    return found


#: fresh event ids (a repeat now and then is drawn on purpose)
_EVENT_SEQ = itertools.count(1)


@st.composite
def _events(draw: st.DrawFn, member: dict, codes: list[str], promotion_ids: list[str]) -> Any:
    """A well-formed event of a type we handle (a payment, a Checkout Session, a refund), naming
    the member or not and our vouchers or not, its payment from a small pool (so repeats
    happen), now and then an event id seen before; then up to three places in it (mostly fields
    we read) deleted or replaced by a value that breaks fields (EDGES) or any JSON value."""
    n = draw(st.integers(0, 3))
    metadata = draw(
        st.sampled_from(
            [
                {"loyalty_member_id": str(member["id"])},
                {"loyalty_card_number": member["card_number"]},
                {},
                {"loyalty_voucher_codes": ",".join(codes)},
                {"loyalty_member_id": "9" * 19},
            ]
        )
    )
    discounts = draw(
        st.lists(
            st.sampled_from(
                [{"coupon": c} for c in codes] + [{"promotion_code": p} for p in promotion_ids]
            ),
            max_size=2,
        )
    )
    kind = draw(st.sampled_from(EVENT_TYPES))
    amount = draw(st.integers(0, 20_000))
    repeat = draw(st.sampled_from(range(8))) == 0  # a redelivery of an event seen before
    event_id = "evt_repeated" if repeat else f"evt_{next(_EVENT_SEQ)}"
    if kind == "payment_intent.succeeded":
        event = payment_event(member, event_id, f"pi_{n}", amount)
        event["data"]["object"].update(metadata=metadata, receipt_email="ann@example.com")
    elif kind == "charge.refunded":
        refund = {"id": f"re_{draw(st.integers(0, 5))}", "amount": amount}
        charge = {"id": "ch_1", "payment_intent": f"pi_{n}", "currency": "eur"}
        charge.update(amount_refunded=amount, refunds={"data": [refund]})
        event = {"id": event_id, "type": kind, "data": {"object": charge}}
    else:
        event = checkout_event(
            metadata,
            event_id=event_id,
            session_id=f"cs_{n}",
            payment_intent=draw(st.sampled_from([f"pi_{n}", None])),
            subtotal=amount + 500,
            total=amount,
            discounts=discounts,
            event_type=kind,
            payment_status=draw(st.sampled_from(["paid", "paid", "paid", "unpaid"])),
        )
    for _ in range(draw(st.integers(0, 3))):
        places = _paths(event)
        read = [p for p in places if p[-1] in READ_FIELDS] or places
        *parent, key = draw(st.sampled_from(read) | st.sampled_from(places))
        target = event
        for step in parent:
            target = target[step]
        if draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(EDGES | JSON)
    return event


def test_no_signed_event_gets_a_500(app, client, admin, pos, member, stripe_on) -> None:
    """Events Stripe could sign, in the shapes of those we handle, with fields missing, null, of
    another type or out of range, their ids repeating: each answered 200 with a known status
    (so Stripe stops retrying), never a 500; and the books still add up."""
    codes = [goodwill(client, admin, member)["code"] for _ in range(3)]
    promotion_ids = [voucher_row(app, c).stripe_promotion_code_id for c in codes]
    seen: set[str] = set()

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(event=_events(member, codes, promotion_ids))
    def check(event: Any) -> None:
        r = post_event(client, event)
        assert r.status_code == 200, (r.status_code, r.get_data(as_text=True)[:500])
        assert r.json["received"] is True and r.json["status"] in OUTCOME_STATUSES
        seen.add(r.json["status"])

    check()
    assert seen == OUTCOME_STATUSES  # every way an event can go was reached
    with app.app_context():
        earned = db.session.scalar(select(func.coalesce(func.sum(Purchase.points_earned), 0)))
        reversed_ = db.session.scalar(select(func.coalesce(func.sum(Return.points_reversed), 0)))
        used = db.session.scalar(select(func.count()).where(Voucher.status == "used"))
    assert points(client, pos, member) == earned - reversed_
    assert used <= len(codes)


@settings(max_examples=200, deadline=None)
@given(event=JSON)
def test_no_signed_json_value_is_taken_for_an_event(event: Any) -> None:
    """Any JSON value at all, read as an event: a well-formed Event or Unusable, nothing else."""
    try:
        read = stripe_events.read(json.dumps(event).encode(), strict_loads)
    except stripe_events.Unusable as exc:
        assert exc.reason
    else:
        assert isinstance(read.id, str) and isinstance(read.object, dict)
