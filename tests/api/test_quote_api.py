"""POST /checkout/quote: each voucher code and each reward answered as the operation itself
would answer it (the same refusal codes), and nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from loyalty.extensions import db
from loyalty.models import LedgerEntry, Redemption, Reward, Voucher

QUOTE = "/api/v1/checkout/quote"


@pytest.fixture
def member(client, pos, admin) -> dict:
    m = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    r = client.post(
        f"/api/v1/members/{m['id']}/adjustments",
        json={"points": 500, "reason": "seed"},
        headers=admin,
    )
    assert r.status_code == 201, r.json
    return m


def goodwill(client, admin, member_id, **fields) -> str:
    body = {"kind": "amount", "value": 500, "valid_days": 30, "reason": "sorry", **fields}
    r = client.post(f"/api/v1/members/{member_id}/vouchers", json=body, headers=admin)
    assert r.status_code == 201, r.json
    return str(r.json["code"])


def reward(client, admin, **fields) -> int:
    body = {"name": "Coffee", "kind": "free_item", "sku": "COFFEE", "points_cost": 200, **fields}
    r = client.post("/api/v1/rewards", json=body, headers=admin)
    assert r.status_code == 201, r.json
    return int(r.json["id"])


def set_voucher(app, code: str, **values) -> None:
    with app.app_context():
        db.session.execute(
            update(Voucher).where(Voucher.code == code.replace("-", "")).values(**values)
        )
        db.session.commit()


def counts(app) -> tuple[int, int, int]:
    """Ledger entries, redemptions, vouchers no longer active: what a quote must not change."""
    with app.app_context():
        count = select(func.count())
        return (
            db.session.scalar(count.select_from(LedgerEntry)),
            db.session.scalar(count.select_from(Redemption)),
            db.session.scalar(count.select_from(Voucher).where(Voucher.status != "active")),
        )


def test_each_voucher_code_says_whether_it_applies_and_why_not_as_redeem_does(
    app, client, admin, pos, member
) -> None:
    now = datetime.now(UTC)
    other = client.post("/api/v1/members", json={}, headers=pos).json
    good = goodwill(client, admin, member["id"])
    percent = goodwill(client, admin, member["id"], kind="percent", value=15)
    min_spend = goodwill(client, admin, member["id"], min_spend=5000)
    theirs = goodwill(client, admin, other["id"])
    expired, future, void, used = (goodwill(client, admin, member["id"]) for _ in range(4))
    set_voucher(app, expired, valid_from=now - timedelta(days=9), valid_until=now)
    set_voucher(app, future, valid_from=now + timedelta(days=1))
    set_voucher(app, void, status="void")
    set_voucher(app, used, status="used", used_at=now)
    codes = [
        good.lower().replace("-", ""),  # typed any way, answered as printed
        percent,
        min_spend,
        theirs,
        expired,
        future,
        void,
        used,
        "ABCD-EFGH-JK",
        "not a code",
        good,  # named twice: a voucher is used once
    ]
    before = counts(app)
    body = {"member_id": member["id"], "amount": 1999, "currency": "EUR", "voucher_codes": codes}
    r = client.post(QUOTE, json=body, headers=pos)
    assert r.status_code == 200, r.json
    answers = r.json["vouchers"]
    assert [(a["code"], a["applicable"], a["discount"]) for a in answers[:2]] == [
        (good, True, 500),
        (percent, True, 299),  # 15 % of 19.99, rounded down
    ]
    assert [a["refusal"] for a in answers[:2]] == [None, None]
    refused = [
        (a["code"], a["applicable"], a["discount"], a["refusal"]["code"]) for a in answers[2:]
    ]
    assert refused == [
        (min_spend, False, None, "below_min_spend"),
        (theirs, False, None, "voucher_wrong_member"),
        (expired, False, None, "voucher_expired"),
        (future, False, None, "voucher_not_yet_valid"),
        (void, False, None, "voucher_void"),
        (used, False, None, "voucher_used"),
        ("ABCD-EFGH-JK", False, None, "not_found"),
        ("not a code", False, None, "not_found"),
        (good, False, None, "voucher_used"),
    ]
    assert all(a["refusal"]["detail"] for a in answers[2:])
    assert counts(app) == before  # nothing redeemed, nothing posted

    # the redeem endpoint gives each code the same answer: code for code, discount for discount
    for answer in answers[:-1]:
        redeemed = client.post(
            f"/api/v1/vouchers/{answer['code']}/redeem",
            json={"order_ref": "o", "amount": 1999, "currency": "EUR", "member_id": member["id"]},
            headers=pos,
        )
        if answer["applicable"]:
            assert redeemed.status_code == 200 and redeemed.json["discount"] == answer["discount"]
        else:
            assert redeemed.json["code"] == answer["refusal"]["code"], answer


def test_a_quote_is_refused_as_a_whole_only_for_the_basket_not_for_a_voucher(
    client, admin, pos, member
) -> None:
    code = goodwill(client, admin, member["id"])
    body = {"member_id": member["id"], "amount": 1000, "currency": "GBP", "voucher_codes": [code]}
    r = client.post(QUOTE, json=body, headers=pos)
    assert (r.status_code, r.json["code"]) == (422, "currency_mismatch")
    r = client.post(QUOTE, json={**body, "currency": "EUR", "voucher_codes": []}, headers=pos)
    assert r.status_code == 200 and r.json["vouchers"] == []
    r = client.post(
        QUOTE, json={**body, "currency": "EUR", "voucher_codes": [code] * 21}, headers=pos
    )
    assert (r.status_code, list(r.json["errors"])) == (422, ["voucher_codes"])


def test_each_reward_says_whether_it_applies_its_points_discount_and_why_not(
    app, client, admin, pos, member
) -> None:
    five_off = reward(client, admin, name="5 off", kind="amount_off", value=500, sku=None)
    ten_pct = reward(client, admin, name="10%", kind="percent_off", value=10, sku=None)
    coffee = reward(client, admin, points_cost=100)
    cake = reward(client, admin, name="Cake", sku="CAKE", points_cost=50)
    dear = reward(client, admin, name="dear", points_cost=501)
    gone = reward(client, admin, name="gone", points_cost=10, stock=0)
    once = reward(client, admin, name="once", points_cost=10, per_member_limit=1)
    off = reward(client, admin, name="off", points_cost=10)
    client.patch(f"/api/v1/rewards/{off}", json={"active": False}, headers=admin)
    assert (
        client.post(
            "/api/v1/redemptions", json={"member_id": member["id"], "reward_id": once}, headers=pos
        ).json["status"]
        == "reserved"
    )  # holds 10 of the 500 points
    lines = [{"sku": "COFFEE", "quantity": 2, "unit_price": 350}]
    asked = [five_off, ten_pct, coffee, cake, dear, gone, once, off, 999_999]
    body = {
        "card_number": member["card_number"],
        "amount": 2000,
        "currency": "EUR",
        "lines": lines,
        "reward_ids": asked,
    }
    before = counts(app)
    r = client.post(QUOTE, json=body, headers=pos)
    assert r.status_code == 200, r.json
    assert r.json["balance"] == {"points": 500, "held": 10, "pending": 0, "available": 490}
    got = [
        (
            x["reward_id"],
            x["applicable"],
            x["points"],
            x["discount"],
            (x["refusal"] or {}).get("code"),
        )
        for x in r.json["rewards"]
    ]
    # asked together they are judged as if reserved one after the other: 490 available, then
    # 5 off takes 200, 10 % takes 200 (90 left), coffee (100) no longer fits, cake (50) does
    assert got == [
        (five_off, True, 200, 500, None),
        (ten_pct, True, 200, 200, None),
        (coffee, False, None, None, "insufficient_points"),
        (cake, True, 50, None, None),  # a free item not in the basket takes nothing off
        (dear, False, None, None, "insufficient_points"),
        (gone, False, None, None, "out_of_stock"),
        (once, False, None, None, "reward_limit_reached"),
        (off, False, None, None, "reward_unavailable"),
        (999_999, False, None, None, "not_found"),
    ]
    assert [x["affordable"] for x in r.json["rewards"]] == [x[1] for x in got]
    assert [x["available"] for x in r.json["rewards"]] == [True] * 7 + [False, False]
    assert counts(app) == before

    # alone, the coffee applies and takes one line's unit price off
    r = client.post(QUOTE, json={**body, "reward_ids": [coffee]}, headers=pos)
    [answer] = r.json["rewards"]
    assert (answer["applicable"], answer["points"], answer["discount"]) == (True, 100, 350)

    # POST /redemptions refuses each refused one with the same code
    for reward_id, applies, _points, _discount, code in got[4:]:
        red = client.post(
            "/api/v1/redemptions",
            json={"member_id": member["id"], "reward_id": reward_id},
            headers=pos,
        )
        assert not applies and red.json["code"] == code, (reward_id, red.json)


def test_the_catalogue_in_a_quote_judges_each_reward_on_its_own(client, admin, pos, member) -> None:
    a = reward(client, admin, name="a", points_cost=300)
    b = reward(client, admin, name="b", points_cost=400)
    body = {"member_id": member["id"], "amount": 100, "currency": "EUR"}
    r = client.post(QUOTE, json=body, headers=pos)
    assert [(x["reward_id"], x["applicable"], x["points"]) for x in r.json["rewards"]] == [
        (a, True, 300),
        (b, True, 400),
    ]
    # asked together, the second no longer fits in the 500 points
    r = client.post(QUOTE, json={**body, "reward_ids": [a, b]}, headers=pos)
    assert [(x["applicable"], (x["refusal"] or {}).get("code")) for x in r.json["rewards"]] == [
        (True, None),
        (False, "insufficient_points"),
    ]
    # the same reward twice is two redemptions: 300 + 300 is more than the 500 points
    r = client.post(QUOTE, json={**body, "reward_ids": [a, a]}, headers=pos)
    assert [x["applicable"] for x in r.json["rewards"]] == [True, False]


def test_a_reservation_past_its_time_is_not_held_in_a_quote(
    app, client, admin, pos, member
) -> None:
    """The redemption expires it first, so the quote counts its points as available (without
    writing the expiry)."""
    big = reward(client, admin, name="big", points_cost=400)
    red = client.post(
        "/api/v1/redemptions", json={"member_id": member["id"], "reward_id": big}, headers=pos
    ).json
    body = {"member_id": member["id"], "amount": 100, "currency": "EUR", "reward_ids": [big]}
    r = client.post(QUOTE, json=body, headers=pos)
    assert r.json["balance"]["available"] == 100
    assert r.json["rewards"][0]["refusal"]["code"] == "insufficient_points"
    with app.app_context():
        db.session.execute(
            update(Redemption)
            .where(Redemption.id == red["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.session.commit()
    r = client.post(QUOTE, json=body, headers=pos)
    assert r.json["balance"] == {"points": 500, "held": 0, "pending": 0, "available": 500}
    assert r.json["balance_after"] == {"points": 501, "held": 0, "pending": 0, "available": 501}
    assert r.json["rewards"][0]["applicable"] is True
    with app.app_context():
        assert db.session.get(Redemption, red["id"]).status == "reserved"  # not written
        assert db.session.get(Reward, big).stock is None
    r = client.post(
        "/api/v1/redemptions", json={"member_id": member["id"], "reward_id": big}, headers=pos
    )
    assert r.status_code == 201  # as the quote said
