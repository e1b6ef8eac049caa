"""Rewards and redemptions: every transition and refusal, with the balance after each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from loyalty.extensions import db
from loyalty.models import Purchase, Redemption
from tests import factories


@pytest.fixture
def member(client, pos, admin) -> dict:
    m = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    client.post(
        f"/api/v1/members/{m['id']}/adjustments",
        json={"points": 500, "reason": "seed"},
        headers=admin,
    )
    return m


def reward(client, admin, **fields) -> dict:
    body = {"name": "Coffee", "kind": "free_item", "sku": "COFFEE", "points_cost": 200, **fields}
    r = client.post("/api/v1/rewards", json=body, headers=admin)
    assert r.status_code == 201, r.json
    return r.json


def balance(client, pos, member) -> dict:
    return client.get(f"/api/v1/members/{member['id']}", headers=pos).json["balance"]


def redeem(client, pos, member, reward_id, **extra):
    return client.post(
        "/api/v1/redemptions",
        json={"member_id": member["id"], "reward_id": reward_id, **extra},
        headers=pos,
    )


def verify(runner) -> None:
    out = runner.invoke(args=["loyalty", "verify-ledger"])
    assert out.exit_code == 0, out.output


def test_catalogue_kinds_and_their_validation(client, admin, pos) -> None:
    amount = reward(client, admin, name="5 off", kind="amount_off", value=500, sku=None)
    assert (amount["currency"], amount["value"]) == ("EUR", 500)
    pct = reward(client, admin, name="10%", kind="percent_off", value=10, sku=None)
    assert pct["currency"] is None
    for body, field in [
        ({"kind": "percent_off", "value": 101, "sku": None}, "value"),
        ({"kind": "amount_off", "value": None, "sku": None}, "value"),
        ({"kind": "free_item", "sku": None}, "sku"),
        ({"points_cost": 0}, "points_cost"),
        (
            {
                "active_from": "2027-01-02T00:00:00+00:00",
                "active_until": "2027-01-01T00:00:00+00:00",
            },
            "active_until",
        ),
        ({"kind": "cashback"}, "kind"),
    ]:
        body = {"name": "x", "kind": "free_item", "sku": "X", "points_cost": 10, **body}
        r = client.post("/api/v1/rewards", json=body, headers=admin)
        assert r.status_code == 422 and field in r.json["errors"], (body, r.json)
    assert (
        client.post(
            "/api/v1/rewards",
            json={"name": "x", "kind": "free_item", "sku": "X", "points_cost": 1},
            headers=pos,
        ).status_code
        == 403
    )
    listed = client.get("/api/v1/rewards", headers=pos).json
    assert [r["name"] for r in listed] == ["5 off", "10%"]  # cheapest first, then oldest


def test_catalogue_shows_what_a_member_can_afford(client, admin, pos, member) -> None:
    cheap = reward(client, admin, name="cheap", points_cost=100)
    dear = reward(client, admin, name="dear", points_cost=900)
    gone = reward(client, admin, name="gone", points_cost=50, stock=0)
    once = reward(client, admin, name="once", points_cost=10, per_member_limit=1)
    later = reward(
        client, admin, name="later", active_from=(datetime.now(UTC) + timedelta(days=1)).isoformat()
    )
    off = reward(client, admin, name="off")
    client.patch(f"/api/v1/rewards/{off['id']}", json={"active": False}, headers=admin)
    redeem(client, pos, member, once["id"], instant=True)
    r = client.get(f"/api/v1/rewards?card_number={member['card_number']}", headers=pos)
    assert r.status_code == 200
    seen = {x["name"]: x["affordable"] for x in r.json}
    assert seen == {"once": False, "gone": False, "cheap": True, "dear": False}
    assert later["id"] not in [x["id"] for x in r.json] and off["id"] not in [
        x["id"] for x in r.json
    ]
    assert all(x.get("affordable") is None for x in client.get("/api/v1/rewards", headers=pos).json)
    assert cheap and dear and gone


def test_reserve_confirm_with_the_balance_after_each_step(
    client, admin, pos, member, runner
) -> None:
    r_id = reward(client, admin, points_cost=200)["id"]
    r = redeem(client, pos, member, r_id, order_ref="web-1")
    assert r.status_code == 201
    red = r.json
    assert (red["status"], red["points"], red["order_ref"]) == ("reserved", 200, "web-1")
    assert red["benefit"] == {"kind": "free_item", "value": None, "currency": None, "sku": "COFFEE"}
    assert red["balance"] == {"points": 500, "held": 200, "pending": 0, "available": 300}
    assert balance(client, pos, member) == {
        "points": 500,
        "held": 200,
        "pending": 0,
        "available": 300,
    }

    c = client.post(f"/api/v1/redemptions/{red['id']}/confirm", json={}, headers=pos)
    assert c.status_code == 200 and c.json["status"] == "redeemed" and c.json["redeemed_at"]
    assert balance(client, pos, member) == {
        "points": 300,
        "held": 0,
        "pending": 0,
        "available": 300,
    }
    again = client.post(f"/api/v1/redemptions/{red['id']}/confirm", headers=pos)
    assert again.status_code == 200 and again.json["status"] == "redeemed"
    assert balance(client, pos, member)["points"] == 300  # redeemed once
    x = client.post(f"/api/v1/redemptions/{red['id']}/cancel", headers=pos)
    assert x.status_code == 409 and x.json["code"] == "redemption_already_redeemed"
    ledger = client.get(f"/api/v1/members/{member['id']}/ledger", headers=admin).json
    assert [
        (e["kind"], e["points"], e["balance_after"], e["redemption_id"]) for e in ledger[:1]
    ] == [("redeem", -200, 300, red["id"])]
    verify(runner)


def test_reserve_cancel_then_confirm_is_refused(client, admin, pos, member, runner) -> None:
    r_id = reward(client, admin, points_cost=200, stock=3)["id"]
    red = redeem(client, pos, member, r_id).json
    assert client.get(f"/api/v1/rewards/{r_id}", headers=pos).json["stock"] == 2
    c = client.post(f"/api/v1/redemptions/{red['id']}/cancel", headers=pos)
    assert c.status_code == 200 and c.json["status"] == "released"
    assert balance(client, pos, member) == {
        "points": 500,
        "held": 0,
        "pending": 0,
        "available": 500,
    }
    assert client.get(f"/api/v1/rewards/{r_id}", headers=pos).json["stock"] == 3
    assert (
        client.post(f"/api/v1/redemptions/{red['id']}/cancel", headers=pos).json["status"]
        == "released"
    )
    x = client.post(f"/api/v1/redemptions/{red['id']}/confirm", headers=pos)
    assert x.status_code == 409 and x.json["code"] == "redemption_not_reserved"
    verify(runner)


def test_instant_redeems_in_one_call(client, admin, pos, member) -> None:
    r_id = reward(client, admin, kind="amount_off", value=250, sku=None, points_cost=100)["id"]
    r = redeem(client, pos, member, r_id, instant=True)
    assert r.status_code == 201 and r.json["status"] == "redeemed"
    assert r.json["benefit"] == {"kind": "amount_off", "value": 250, "currency": "EUR", "sku": None}
    assert r.json["balance"] == {"points": 400, "held": 0, "pending": 0, "available": 400}


def test_refusals(client, admin, pos, member) -> None:
    dear = reward(client, admin, points_cost=501)["id"]
    r = redeem(client, pos, member, dear)
    assert r.status_code == 422 and r.json["code"] == "insufficient_points"
    none_left = reward(client, admin, points_cost=1, stock=0)["id"]
    r = redeem(client, pos, member, none_left)
    assert r.status_code == 422 and r.json["code"] == "out_of_stock"
    once = reward(client, admin, points_cost=1, per_member_limit=1)["id"]
    assert redeem(client, pos, member, once).status_code == 201
    r = redeem(client, pos, member, once)
    assert r.status_code == 422 and r.json["code"] == "reward_limit_reached"
    off = reward(client, admin, points_cost=1)["id"]
    client.patch(f"/api/v1/rewards/{off}", json={"active": False}, headers=admin)
    r = redeem(client, pos, member, off)
    assert r.status_code == 422 and r.json["code"] == "reward_unavailable"
    assert redeem(client, pos, member, 999999).status_code == 404
    assert balance(client, pos, member) == {
        "points": 500,
        "held": 1,
        "pending": 0,
        "available": 499,
    }
    assert client.post("/api/v1/redemptions/999999/confirm", headers=pos).status_code == 404


def test_an_overdue_reservation_reads_expired_without_any_job(
    app, client, admin, pos, member, runner
) -> None:
    r_id = reward(client, admin, points_cost=200, stock=1)["id"]
    red = redeem(client, pos, member, r_id).json
    with app.app_context():
        db.session.execute(
            update(Redemption).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.session.commit()
    r = client.get(f"/api/v1/redemptions/{red['id']}", headers=pos)
    assert r.status_code == 200 and r.json["status"] == "expired"
    assert r.json["balance"] == {"points": 500, "held": 0, "pending": 0, "available": 500}
    assert client.get(f"/api/v1/rewards/{r_id}", headers=pos).json["stock"] == 1
    x = client.post(f"/api/v1/redemptions/{red['id']}/confirm", headers=pos)
    assert x.status_code == 409 and x.json["code"] == "redemption_not_reserved"
    verify(runner)


def test_the_till_lookup_shows_expired_points_as_available(app, client, admin, pos, member) -> None:
    r_id = reward(client, admin, points_cost=200)["id"]
    redeem(client, pos, member, r_id)
    with app.app_context():
        db.session.execute(
            update(Redemption).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        db.session.commit()
    card = client.get(f"/api/v1/cards/{member['card_number']}", headers=pos).json
    assert card["balance"] == {"points": 500, "held": 0, "pending": 0, "available": 500}


def test_release_expired_command_sweeps_the_rest(app, client, admin, pos, member, runner) -> None:
    r_id = reward(client, admin, points_cost=100)["id"]
    redeem(client, pos, member, r_id)
    redeem(client, pos, member, r_id)
    with app.app_context():
        db.session.execute(
            update(Redemption).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        db.session.commit()
    out = runner.invoke(args=["loyalty", "release-expired"])
    assert "Released 2 expired reservations." in out.output
    with app.app_context():
        assert {r.status for r in db.session.query(Redemption)} == {"expired"}
    verify(runner)


def test_a_full_return_gives_the_redeemed_points_back_a_partial_one_does_not(
    client, admin, pos, member, runner
) -> None:
    r_id = reward(client, admin, points_cost=100)["id"]
    sale = {"external_id": "s-1", "member_id": member["id"], "amount": 5000, "currency": "EUR"}
    p = client.post("/api/v1/purchases", json=sale, headers=pos).json  # +50 → 550
    red = redeem(client, pos, member, r_id).json
    client.post(
        f"/api/v1/redemptions/{red['id']}/confirm",
        json={"purchase_external_id": "s-1"},
        headers=pos,
    )
    assert balance(client, pos, member)["points"] == 450
    client.post(
        f"/api/v1/purchases/{p['id']}/returns",
        json={"external_id": "r-1", "amount": 2500},
        headers=pos,
    )
    assert balance(client, pos, member)["points"] == 425  # -25 pro rata, the reward stays spent
    client.post(
        f"/api/v1/purchases/{p['id']}/returns",
        json={"external_id": "r-2", "amount": 2500},
        headers=pos,
    )
    assert balance(client, pos, member)["points"] == 500  # -25, then +100 for the returned reward
    detail = client.get(f"/api/v1/purchases/{p['id']}", headers=pos).json
    assert [(e["kind"], e["points"]) for e in detail["ledger_entries"]] == [
        ("earn", 50),
        ("reverse", -25),
        ("reverse", -25),
        ("reverse", 100),
    ]
    verify(runner)


def test_confirm_with_an_unknown_or_foreign_purchase(client, admin, pos, member) -> None:
    r_id = reward(client, admin, points_cost=100)["id"]
    red = redeem(client, pos, member, r_id).json
    r = client.post(
        f"/api/v1/redemptions/{red['id']}/confirm",
        json={"purchase_external_id": "nope"},
        headers=pos,
    )
    assert r.status_code == 404 and "purchase_external_id" in r.json["errors"]
    other = client.post("/api/v1/members", json={}, headers=pos).json
    client.post(
        "/api/v1/purchases",
        json={"external_id": "o-1", "member_id": other["id"], "amount": 100, "currency": "EUR"},
        headers=pos,
    )
    r = client.post(
        f"/api/v1/redemptions/{red['id']}/confirm",
        json={"purchase_external_id": "o-1"},
        headers=pos,
    )
    assert r.status_code == 422 and r.json["code"] == "member_mismatch"
    assert balance(client, pos, member)["held"] == 100


def test_the_quote_says_which_rewards_the_member_can_afford(client, admin, pos, member) -> None:
    cheap = reward(client, admin, name="cheap", points_cost=100)["id"]
    dear = reward(client, admin, name="dear", points_cost=1000)["id"]
    body = {"member_id": member["id"], "amount": 1000, "currency": "EUR"}
    q = client.post("/api/v1/checkout/quote", json=body, headers=pos).json
    assert [(r["reward_id"], r["affordable"]) for r in q["rewards"]] == [
        (cheap, True),
        (dear, False),
    ]
    q = client.post(
        "/api/v1/checkout/quote", json={**body, "reward_ids": [dear, 999]}, headers=pos
    ).json
    assert q["rewards"] == [
        {
            "reward_id": dear,
            "name": "dear",
            "points_cost": 1000,
            "available": True,
            "affordable": False,
            "benefit": {"kind": "free_item", "value": None, "currency": None, "sku": "COFFEE"},
            "applicable": False,
            "points": None,
            "discount": None,
            "refusal": {
                "code": "insufficient_points",
                "detail": "1000 points needed, 500 available.",
            },
        },
        {
            "reward_id": 999,
            "available": False,
            "affordable": False,
            "applicable": False,
            "points": None,
            "discount": None,
            "refusal": {"code": "not_found", "detail": "No reward 999."},
        },
    ]


def test_an_adjustment_sees_points_of_an_overdue_reservation_as_available(
    app, client, admin, pos, member
) -> None:
    r_id = reward(client, admin, points_cost=400)["id"]
    redeem(client, pos, member, r_id)
    with app.app_context():
        db.session.execute(
            update(Redemption).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        db.session.commit()
    r = client.post(
        f"/api/v1/members/{member['id']}/adjustments",
        json={"points": -450, "reason": "fix"},
        headers=admin,
    )
    assert r.status_code == 201 and r.json["balance"] == {
        "points": 50,
        "held": 0,
        "pending": 0,
        "available": 50,
    }


def test_on_the_demo_data_a_till_and_a_webshop_redeem(runner, client) -> None:
    """A till's rewards day, on `seed-demo`'s data."""
    out = runner.invoke(args=["loyalty", "seed-demo"]).output
    pos = {
        "Authorization": "Bearer "
        + next(x for x in out.splitlines() if x.startswith("demo-pos")).split()[-1]
    }
    card = "9900000000000002"  # Chloé, 1000 demo points
    lookup = client.get(f"/api/v1/cards/{card}", headers=pos).json
    assert lookup["balance"]["available"] == 1000
    catalogue = client.get(f"/api/v1/rewards?card_number={card}", headers=pos).json
    assert [r["affordable"] for r in catalogue] == [True, True, True]
    coffee = catalogue[0]["id"]
    r = client.post(
        "/api/v1/redemptions",
        json={"card_number": card, "reward_id": coffee, "instant": True},
        headers=pos,
    )
    assert (
        r.status_code == 201
        and r.json["status"] == "redeemed"
        and r.json["balance"]["points"] == 950
    )
    held = client.post(
        "/api/v1/redemptions",
        json={"card_number": card, "reward_id": catalogue[1]["id"]},
        headers=pos,
    ).json
    assert (
        client.post(f"/api/v1/redemptions/{held['id']}/confirm", headers=pos).json["status"]
        == "redeemed"
    )
    other = client.post(
        "/api/v1/redemptions",
        json={"card_number": card, "reward_id": catalogue[2]["id"]},
        headers=pos,
    ).json
    assert (
        client.post(f"/api/v1/redemptions/{other['id']}/cancel", headers=pos).json["status"]
        == "released"
    )
    assert client.get(f"/api/v1/cards/{card}", headers=pos).json["balance"] == {
        "points": 700,
        "held": 0,
        "pending": 0,
        "available": 700,
    }


def test_reports_reads_the_catalogue_but_learns_nothing_about_a_member(
    client, admin, pos, api_key, member
) -> None:
    """A reporting key may read the catalogue; naming a member is refused with 403 before any
    lookup, so an existing member, an unknown one and a blocked card all read the same."""
    reports = api_key("reports")
    cheap = reward(client, admin, name="cheap", points_cost=100)["id"]
    r = client.get("/api/v1/rewards", headers=reports)
    assert r.status_code == 200
    assert [(x["id"], x["affordable"]) for x in r.json] == [(cheap, None)]

    unknown_card = "9900000000000002"  # Luhn-valid, nobody's
    answers = []
    for query in (
        f"card_number={member['card_number']}",
        f"card_number={unknown_card}",
        f"member_id={member['id']}",
        "member_id=999999",
    ):
        r = client.get(f"/api/v1/rewards?{query}", headers=reports)
        assert (r.status_code, r.json["code"]) == (403, "forbidden"), query
        assert list(r.json["errors"]) == [query.split("=")[0]]
        assert "affordable" not in r.text
        answers.append((r.status_code, r.json["detail"]))
    assert len(set(answers)) == 1  # no answer tells one member from another

    r = client.get(f"/api/v1/rewards?card_number={member['card_number']}", headers=pos)
    assert r.status_code == 200 and [(x["id"], x["affordable"]) for x in r.json] == [(cheap, True)]
    r = client.get(f"/api/v1/rewards?card_number={unknown_card}", headers=pos)
    assert (r.status_code, r.json["code"]) == (404, "not_found")
    # a key with reports and pos may name a member: the pos scope allows it
    both = api_key("reports", "pos")
    r = client.get(f"/api/v1/rewards?card_number={member['card_number']}", headers=both)
    assert r.status_code == 200 and r.json[0]["affordable"] is True


# whose reservation it is -----------------------------------------------------------------------
def test_a_reservation_is_read_confirmed_or_cancelled_only_by_the_client_that_made_it(
    client, admin, pos, api_key, member
) -> None:
    """Another client gets the 404 of a redemption that does not exist (not even its existence
    leaks); an admin key may act on any."""
    webshop = api_key("webshop", name="webshop")
    other_shop = api_key("webshop", name="other-shop")
    r_id = reward(client, admin, points_cost=100)["id"]
    mine = redeem(client, webshop, member, r_id).json
    missing = client.get("/api/v1/redemptions/999999", headers=webshop).json
    for stranger in (pos, other_shop):
        for method, path in [
            ("get", ""),
            ("post", "/confirm"),
            ("post", "/cancel"),
        ]:
            r = getattr(client, method)(f"/api/v1/redemptions/{mine['id']}{path}", headers=stranger)
            assert (r.status_code, r.json["code"]) == (404, "not_found"), (method, path)
            assert r.json["errors"] == {"redemption_id": [f"No redemption {mine['id']}."]}
            assert r.json["title"] == missing["title"]
    assert balance(client, pos, member) == {
        "points": 500,
        "held": 100,
        "pending": 0,
        "available": 400,
    }

    r = client.post(f"/api/v1/redemptions/{mine['id']}/confirm", headers=webshop)
    assert r.status_code == 200 and r.json["status"] == "redeemed"
    second = redeem(client, webshop, member, r_id).json
    assert client.get(f"/api/v1/redemptions/{second['id']}", headers=admin).status_code == 200
    r = client.post(f"/api/v1/redemptions/{second['id']}/cancel", headers=admin)
    assert r.status_code == 200 and r.json["status"] == "released"
    assert balance(client, pos, member) == {
        "points": 400,
        "held": 0,
        "pending": 0,
        "available": 400,
    }


STRIPE_SECRET = "whsec_rewards_test"


def stripe_payment(app, client, member: dict, payment_intent: str, amount: int) -> int:
    """A payment_intent.succeeded for the member; the id of the purchase it recorded."""
    obj = factories.stripe_payment_intent(payment_intent, member["id"], amount)
    r = factories.post_stripe_event(client, STRIPE_SECRET, "payment_intent.succeeded", obj)
    assert r.status_code == 200, r.json
    with app.app_context():
        purchase_id = db.session.scalar(
            select(Purchase.id).where(Purchase.external_id == payment_intent)
        )
    assert purchase_id is not None, r.json
    return purchase_id


def test_a_webshop_confirms_against_the_purchase_a_stripe_webhook_recorded(
    app, client, admin, pos, api_key, member, runner, monkeypatch
) -> None:
    """Reserve at checkout, the customer pays with Stripe, Stripe's webhook records the purchase,
    the webshop confirms against it: by the PaymentIntent id or by the purchase id. A refund of
    the whole payment then gives the rewards' points back."""
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)
    webshop = api_key("webshop", name="webshop")
    r_id = reward(client, admin, points_cost=100)["id"]
    paid = stripe_payment(app, client, member, "pi_3PaidWithStripe", 5000)  # +50 → 550

    def confirm(body: dict) -> tuple[int, object]:
        red = redeem(client, webshop, member, r_id).json
        url = f"/api/v1/redemptions/{red['id']}/confirm"
        return red["id"], client.post(url, json=body, headers=webshop)

    _, by_intent = confirm({"purchase_external_id": "pi_3PaidWithStripe"})
    assert by_intent.status_code == 200, by_intent.json
    assert (by_intent.json["status"], by_intent.json["purchase_id"]) == ("redeemed", paid)
    _, by_id = confirm({"purchase_id": paid})
    assert by_id.status_code == 200 and by_id.json["purchase_id"] == paid
    assert balance(client, pos, member) == {
        "points": 350,
        "held": 0,
        "pending": 0,
        "available": 350,
    }

    # purchases of other clients stay theirs; two names must name one purchase
    sale = {"external_id": "till-1", "member_id": member["id"], "amount": 100, "currency": "EUR"}
    at_till = client.post("/api/v1/purchases", json=sale, headers=pos).json["id"]  # +1
    own = {**sale, "external_id": "own-1"}
    assert client.post("/api/v1/purchases", json=own, headers=webshop).status_code == 201  # +1
    other = client.post("/api/v1/members", json={"name": "Bo"}, headers=pos).json
    theirs = stripe_payment(app, client, other, "pi_3SomeoneElse", 1000)
    for body, status, code, field in [
        ({"purchase_id": at_till}, 404, "not_found", "purchase_id"),
        ({"purchase_external_id": "till-1"}, 404, "not_found", "purchase_external_id"),
        (
            {"purchase_id": paid, "purchase_external_id": "own-1"},
            422,
            "validation_error",
            "purchase_id",
        ),
        ({"purchase_id": theirs}, 422, "member_mismatch", "purchase_id"),
        (
            {"purchase_external_id": "pi_3SomeoneElse"},
            422,
            "member_mismatch",
            "purchase_external_id",
        ),
    ]:
        red_id, r = confirm(body)
        assert (r.status_code, r.json["code"], list(r.json["errors"])) == (status, code, [field]), (
            body
        )
        state = client.get(f"/api/v1/redemptions/{red_id}", headers=webshop).json["status"]
        assert state == "reserved"
        client.post(f"/api/v1/redemptions/{red_id}/cancel", headers=webshop)
    assert balance(client, pos, member) == {
        "points": 352,
        "held": 0,
        "pending": 0,
        "available": 352,
    }

    refund = {
        "id": "ch_3PaidWithStripe",
        "object": "charge",
        "payment_intent": "pi_3PaidWithStripe",
        "currency": "eur",
        "amount_refunded": 5000,
        "refunds": {"data": [{"id": "re_1", "amount": 5000}]},
    }
    r = factories.post_stripe_event(client, STRIPE_SECRET, "charge.refunded", refund)
    assert r.status_code == 200, r.json
    # -50 for the refund, +100 for each reward redeemed on the payment
    assert balance(client, pos, member) == {
        "points": 502,
        "held": 0,
        "pending": 0,
        "available": 502,
    }
    verify(runner)
