"""Limits on the liability: purchases, adjustments and goodwill vouchers above their configured
ceilings are refused (422 limit_exceeded naming the limit), and a blank reason is no reason."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from loyalty.extensions import db
from loyalty.models import AuditEntry, Card, LedgerEntry, Purchase, Voucher
from tests import factories


@pytest.fixture
def member(client, pos) -> dict:
    return client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json


@pytest.fixture
def ceilings(app, monkeypatch):
    """Lower ceilings for the test (the app config is read on each request)."""
    for name, value in {
        "LOYALTY_MAX_PURCHASE_AMOUNT": 5000,
        "LOYALTY_MAX_ADJUSTMENT_POINTS": 300,
        "LOYALTY_MAX_GOODWILL_AMOUNT": 1500,
        "LOYALTY_MAX_GOODWILL_PERCENT": 20,
    }.items():
        monkeypatch.setitem(app.config, name, value)


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def sale(member: dict, external_id: str, amount: int) -> dict:
    return {
        "external_id": external_id,
        "member_id": member["id"],
        "amount": amount,
        "currency": "EUR",
    }


def balance(client, admin, member) -> dict:
    return client.get(f"/api/v1/members/{member['id']}", headers=admin).json["balance"]


def test_the_defaults_are_in_the_app_config(app) -> None:
    assert app.config["LOYALTY_MAX_PURCHASE_AMOUNT"] == 10_000_000
    assert app.config["LOYALTY_MAX_ADJUSTMENT_POINTS"] == 100_000
    assert app.config["LOYALTY_MAX_GOODWILL_AMOUNT"] == 25_000
    assert app.config["LOYALTY_MAX_GOODWILL_PERCENT"] == 50


def test_a_purchase_above_the_ceiling_is_refused_naming_the_limit(
    app, client, pos, admin, member, ceilings
) -> None:
    r = client.post("/api/v1/purchases", json=sale(member, "big", 5001), headers=pos)
    assert (r.status_code, r.json["code"]) == (422, "limit_exceeded")
    assert r.json["errors"] == {
        "amount": ["5001 is above the limit LOYALTY_MAX_PURCHASE_AMOUNT = 5000."]
    }
    assert count(app, Purchase) == count(app, LedgerEntry) == 0
    r = client.post("/api/v1/purchases", json=sale(member, "big", 5000), headers=pos)
    assert r.status_code == 201 and r.json["points_earned"] == 50


def test_a_batch_item_above_the_ceiling_is_rejected_alone(
    app, client, pos, admin, member, ceilings
) -> None:
    body = {"purchases": [sale(member, "b-1", 6000), sale(member, "b-2", 1000)]}
    results = client.post("/api/v1/purchases/batch", json=body, headers=pos).json["results"]
    assert [x["status"] for x in results] == ["rejected", "created"]
    assert results[0]["error"]["code"] == "limit_exceeded"
    assert list(results[0]["error"]["errors"]) == ["amount"]
    assert count(app, Purchase) == 1 and balance(client, admin, member)["points"] == 10


def test_a_stripe_payment_above_the_ceiling_records_no_purchase(
    app, client, pos, admin, member, ceilings, monkeypatch
) -> None:
    """The webhook goes through the one purchase path: it is acknowledged, nothing is earned."""
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRET", "whsec_limits")
    big = factories.stripe_payment_intent("pi_big", member["id"], 5001)
    r = factories.post_stripe_event(client, "whsec_limits", "payment_intent.succeeded", big)
    assert r.status_code == 200 and "limit_exceeded" in r.json["outcome"]
    assert count(app, Purchase) == 0 and balance(client, admin, member)["points"] == 0
    ok = factories.stripe_payment_intent("pi_ok", member["id"], 5000)
    r = factories.post_stripe_event(client, "whsec_limits", "payment_intent.succeeded", ok)
    assert r.status_code == 200 and count(app, Purchase) == 1
    assert balance(client, admin, member)["points"] == 50


def test_an_adjustment_above_the_ceiling_either_way_is_refused(
    app, client, admin, member, ceilings
) -> None:
    url = f"/api/v1/members/{member['id']}/adjustments"
    for points in (301, -301):
        r = client.post(url, json={"points": points, "reason": "fix"}, headers=admin)
        assert (r.status_code, r.json["code"]) == (422, "limit_exceeded")
        assert r.json["errors"] == {
            "points": ["301 is above the limit LOYALTY_MAX_ADJUSTMENT_POINTS = 300."]
        }
    assert count(app, LedgerEntry) == count(app, AuditEntry) == 0
    assert client.post(url, json={"points": 300, "reason": "fix"}, headers=admin).status_code == 201
    assert (
        client.post(url, json={"points": -300, "reason": "fix"}, headers=admin).status_code == 201
    )
    assert balance(client, admin, member) == {"points": 0, "held": 0, "pending": 0, "available": 0}


@pytest.mark.parametrize(
    ("kind", "value", "limit"),
    [
        ("amount", 1501, "LOYALTY_MAX_GOODWILL_AMOUNT = 1500"),
        ("percent", 21, "LOYALTY_MAX_GOODWILL_PERCENT = 20"),
    ],
)
def test_a_goodwill_voucher_above_the_ceiling_is_refused(
    app, client, admin, member, ceilings, kind, value, limit
) -> None:
    url = f"/api/v1/members/{member['id']}/vouchers"
    body = {"kind": kind, "value": value, "valid_days": 30, "reason": "late delivery"}
    r = client.post(url, json=body, headers=admin)
    assert (r.status_code, r.json["code"]) == (422, "limit_exceeded")
    assert r.json["errors"] == {"value": [f"{value} is above the limit {limit}."]}
    assert count(app, Voucher) == 0
    ok = client.post(url, json={**body, "value": value - 1}, headers=admin)
    assert ok.status_code == 201 and ok.json["value"] == value - 1


@pytest.mark.parametrize("blank", ["", " ", "\t\n  "])
def test_a_blank_reason_is_not_a_reason(app, client, admin, member, blank) -> None:
    adjust = client.post(
        f"/api/v1/members/{member['id']}/adjustments",
        json={"points": 5, "reason": blank},
        headers=admin,
    )
    goodwill = client.post(
        f"/api/v1/members/{member['id']}/vouchers",
        json={"kind": "amount", "value": 100, "valid_days": 30, "reason": blank},
        headers=admin,
    )
    for r in (adjust, goodwill):
        assert (r.status_code, r.json["code"]) == (422, "validation_error")
        assert list(r.json["errors"]) == ["reason"]
    assert count(app, LedgerEntry) == count(app, Voucher) == 0

    code = client.post(
        f"/api/v1/members/{member['id']}/vouchers",
        json={"kind": "amount", "value": 100, "valid_days": 30, "reason": "sorry"},
        headers=admin,
    ).json["code"]
    void = client.post(f"/api/v1/vouchers/{code}/void", json={"reason": blank}, headers=admin)
    assert (void.status_code, list(void.json["errors"])) == (422, ["reason"])
    assert client.get(f"/api/v1/vouchers/{code}", headers=admin).json["status"] == "active"


def test_a_reason_is_kept_without_surrounding_white_space(client, admin, member) -> None:
    r = client.post(
        f"/api/v1/members/{member['id']}/adjustments",
        json={"points": 5, "reason": "  parcel lost \n"},
        headers=admin,
    )
    assert r.status_code == 201 and r.json["note"] == "parcel lost"


def test_an_optional_blank_reason_is_read_as_none(app, client, admin, member) -> None:
    card = member["card_number"]
    r = client.post(f"/api/v1/cards/{card}/block", json={"reason": "   "}, headers=admin)
    assert r.status_code == 200 and r.json["status"] == "blocked"
    with app.app_context():
        assert db.session.scalar(select(Card.block_reason).where(Card.number == card)) is None
    campaign = client.post(
        "/api/v1/campaigns/win-back",
        json={"inactive_days": 30, "kind": "amount", "value": 100, "valid_days": 30, "reason": " "},
        headers=admin,
    )
    assert campaign.status_code == 202 and "reason" not in campaign.json["params"]
