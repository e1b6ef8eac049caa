"""Vouchers at the HTTP edge: goodwill, check, redeem, policies, win-back."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from loyalty.extensions import db
from loyalty.models import Purchase, Voucher, VoucherHoldout

CODE = re.compile(r"^[A-HJ-KM-NP-Z2-9]{4}-[A-HJ-KM-NP-Z2-9]{4}-[A-HJ-KM-NP-Z2-9]{2}$")


@pytest.fixture
def member(client, pos) -> dict:
    return client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json


def goodwill(client, admin, member, **fields) -> dict:
    body = {"kind": "amount", "value": 500, "valid_days": 30, "reason": "late delivery", **fields}
    r = client.post(f"/api/v1/members/{member['id']}/vouchers", json=body, headers=admin)
    assert r.status_code == 201, r.json
    return r.json


def redeem(client, headers, code, amount=2000, **extra):
    body = {"order_ref": "order-1", "amount": amount, "currency": "EUR", **extra}
    return client.post(f"/api/v1/vouchers/{code}/redeem", json=body, headers=headers)


def test_goodwill_voucher_is_issued_by_staff_only_with_a_readable_code(
    client, admin, pos, member
) -> None:
    v = goodwill(client, admin, member)
    assert CODE.match(v["code"])
    assert (v["kind"], v["discount_type"], v["value"], v["currency"], v["status"]) == (
        "goodwill",
        "amount",
        500,
        "EUR",
        "active",
    )
    assert v["reason"] == "late delivery"
    r = client.post(
        f"/api/v1/members/{member['id']}/vouchers",
        json={"kind": "amount", "value": 5, "valid_days": 1, "reason": "x"},
        headers=pos,
    )
    assert r.status_code == 403
    r = client.post(
        f"/api/v1/members/{member['id']}/vouchers",
        json={"kind": "percent", "value": 101, "valid_days": 1, "reason": "x"},
        headers=admin,
    )
    assert r.status_code == 422 and "value" in r.json["errors"]
    r = client.post(
        f"/api/v1/members/{member['id']}/vouchers",
        json={"kind": "amount", "value": 5, "valid_days": 1},
        headers=admin,
    )
    assert r.status_code == 422 and "reason" in r.json["errors"]
    listed = client.get(f"/api/v1/members/{member['id']}/vouchers", headers=pos).json
    assert [x["code"] for x in listed] == [v["code"]]


def test_check_a_voucher_for_a_basket(client, admin, pos, member) -> None:
    code = goodwill(client, admin, member, kind="percent", value=15, min_spend=1000)["code"]
    typed = code.lower().replace("-", "")
    r = client.get(f"/api/v1/vouchers/{typed}?amount=999", headers=pos)
    assert r.status_code == 200
    assert (r.json["applicable"], r.json["refusal"]["code"]) == (False, "below_min_spend")
    r = client.get(f"/api/v1/vouchers/{code}?amount=1999", headers=pos)
    assert (r.json["applicable"], r.json["discount"]) == (True, 299)  # 299.85 rounds down
    assert "discount" not in client.get(f"/api/v1/vouchers/{code}", headers=pos).json
    assert client.get("/api/v1/vouchers/ABCD-EFGH-JK", headers=pos).status_code == 404
    assert client.get("/api/v1/vouchers/not-a-code", headers=pos).status_code == 404


def test_redeem_once_and_every_refusal(app, client, admin, pos, member) -> None:
    code = goodwill(client, admin, member, min_spend=1000)["code"]
    assert redeem(client, pos, code, 999).json["code"] == "below_min_spend"
    assert redeem(client, pos, code, 2000, currency="USD").json["code"] == "currency_mismatch"
    other = client.post("/api/v1/members", json={}, headers=pos).json
    r = redeem(client, pos, code, 2000, member_id=other["id"])
    assert (r.status_code, r.json["code"]) == (422, "voucher_wrong_member")
    r = redeem(client, pos, code, 300 + 1000, card_number=member["card_number"])
    assert r.status_code == 200 and (r.json["discount"], r.json["amount_after"]) == (500, 800)
    assert r.json["voucher"]["status"] == "used"
    r = redeem(client, pos, code)
    assert (r.status_code, r.json["code"]) == (422, "voucher_used")

    expired = goodwill(client, admin, member)["code"]
    void = goodwill(client, admin, member)["code"]
    with app.app_context():
        db.session.execute(
            update(Voucher)
            .where(Voucher.code == expired.replace("-", ""))
            .values(
                valid_from=datetime.now(UTC) - timedelta(days=31),
                valid_until=datetime.now(UTC) - timedelta(seconds=1),
            )
        )
        db.session.execute(
            update(Voucher).where(Voucher.code == void.replace("-", "")).values(status="void")
        )
        db.session.commit()
    assert redeem(client, pos, expired).json["code"] == "voucher_expired"
    assert client.get(f"/api/v1/vouchers/{expired}", headers=pos).json["status"] == "expired"
    assert redeem(client, pos, void).json["code"] == "voucher_void"
    assert redeem(client, pos, "ABCD-EFGH-JK").status_code == 404


def test_an_amount_off_never_exceeds_the_basket(client, admin, pos, member) -> None:
    code = goodwill(client, admin, member, value=5000)["code"]
    r = redeem(client, pos, code, 1200)
    assert (r.json["discount"], r.json["amount_after"]) == (1200, 0)


def test_welcome_voucher_on_enrolment(client, admin, pos) -> None:
    r = client.put(
        "/api/v1/program",
        json={"welcome_policy": {"kind": "percent", "value": 10, "valid_days": 14}},
        headers=admin,
    )
    assert r.status_code == 200 and r.json["welcome_policy"]["min_spend"] == 0
    m = client.post("/api/v1/members", json={}, headers=pos).json
    [v] = client.get(f"/api/v1/members/{m['id']}/vouchers", headers=pos).json
    assert (v["kind"], v["discount_type"], v["value"]) == ("welcome", "percent", 10)
    client.put("/api/v1/program", json={"welcome_policy": None}, headers=admin)
    m2 = client.post("/api/v1/members", json={}, headers=pos).json
    assert client.get(f"/api/v1/members/{m2['id']}/vouchers", headers=pos).json == []


COME_BACK = {
    "min_purchase": 2000,
    "kind": "amount",
    "value": 500,
    "valid_days": 30,
    "min_spend": 1000,
}


def test_a_come_back_voucher_issued_by_a_purchase_is_used_on_the_next(
    app, client, admin, pos, member
) -> None:
    assert (
        client.put(
            "/api/v1/program", json={"come_back_policy": COME_BACK}, headers=admin
        ).status_code
        == 200
    )
    sale = {"member_id": member["id"], "currency": "EUR"}
    small = client.post(
        "/api/v1/purchases", json={**sale, "external_id": "p-0", "amount": 1999}, headers=pos
    ).json
    assert small["vouchers_issued"] == []
    p = client.post(
        "/api/v1/purchases", json={**sale, "external_id": "p-1", "amount": 2500}, headers=pos
    ).json
    [issued] = p["vouchers_issued"]
    assert CODE.match(issued["code"]) and issued["kind"] == "come_back" and issued["value"] == 500
    tomorrow = datetime.fromisoformat(issued["valid_from"])
    assert tomorrow > datetime.now(UTC) and (tomorrow.hour, tomorrow.minute) == (0, 0)
    assert redeem(client, pos, issued["code"]).json["code"] == "voucher_not_yet_valid"
    with app.app_context():  # a day later
        db.session.execute(
            update(Voucher).values(valid_from=datetime.now(UTC) - timedelta(hours=1))
        )
        db.session.commit()
    r = redeem(client, pos, issued["code"], 1500, member_id=member["id"])
    assert r.status_code == 200 and r.json["discount"] == 500


def test_a_come_back_holdout_gets_no_voucher_but_is_recorded(
    app, client, admin, pos, member
) -> None:
    client.put(
        "/api/v1/program",
        json={"come_back_policy": {**COME_BACK, "holdout_percent": 100}},
        headers=admin,
    )
    p = client.post(
        "/api/v1/purchases",
        json={"member_id": member["id"], "currency": "EUR", "external_id": "p-1", "amount": 2500},
        headers=pos,
    ).json
    assert p["vouchers_issued"] == []
    with app.app_context():
        [h] = db.session.scalars(select(VoucherHoldout)).all()
        assert (h.member_id, h.kind, h.holdout_percent, h.source_purchase_id) == (
            member["id"],
            "come_back",
            100,
            p["id"],
        )


def _lapsed(app, client, pos, n: int, days_ago: int) -> list[int]:
    ids = []
    for i in range(n):
        m = client.post("/api/v1/members", json={}, headers=pos).json
        client.post(
            "/api/v1/purchases",
            json={
                "member_id": m["id"],
                "currency": "EUR",
                "external_id": f"old-{days_ago}-{i}",
                "amount": 100,
            },
            headers=pos,
        )
        ids.append(m["id"])
    with app.app_context():
        db.session.execute(
            update(Purchase)
            .where(Purchase.member_id.in_(ids))
            .values(occurred_at=datetime.now(UTC) - timedelta(days=days_ago))
        )
        db.session.commit()
    return ids


def test_win_back_dry_run_then_real_run_with_a_holdout(app, client, admin, pos) -> None:
    lapsed = _lapsed(app, client, pos, 40, 200)
    _lapsed(app, client, pos, 5, 10)  # recent customers: not eligible
    client.post("/api/v1/members", json={}, headers=pos)  # never bought: not eligible
    body = {
        "inactive_days": 90,
        "kind": "percent",
        "value": 20,
        "valid_days": 30,
        "holdout_percent": 25,
        "campaign": "wb-1",
    }
    dry = client.post(
        "/api/v1/campaigns/win-back", json={**body, "dry_run": True}, headers=admin
    ).json
    assert dry["dry_run"] and dry["eligible"] == 40 and dry["issued"] + dry["holdout"] == 40
    assert 0 < dry["holdout"] < 40
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Voucher)) == 0
    started = client.post("/api/v1/campaigns/win-back", json=body, headers=admin)
    assert started.status_code == 202
    assert (started.json["status"], started.json["campaign"], started.json["issued"]) == (
        "pending",
        "wb-1",
        0,
    )
    assert started.headers["Location"] == f"/api/v1/campaigns/{started.json['id']}"
    real = client.get(started.headers["Location"], headers=admin).json  # the job ran (tests)
    assert real["status"] == "done" and real["finished_at"] is not None
    assert (real["eligible"], real["issued"], real["holdout"]) == (
        dry["eligible"],
        dry["issued"],
        dry["holdout"],
    )
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count()).select_from(Voucher).where(Voucher.kind == "win_back")
            )
            == real["issued"]
        )
        assert (
            db.session.scalar(select(func.count()).select_from(VoucherHoldout)) == real["holdout"]
        )
        assert set(db.session.scalars(select(Voucher.member_id))) <= set(lapsed)
    again = client.post("/api/v1/campaigns/win-back", json=body, headers=admin)
    again = client.get(again.headers["Location"], headers=admin).json
    assert (again["status"], again["eligible"]) == ("done", 0)  # nobody is counted twice
    assert client.post("/api/v1/campaigns/win-back", json=body, headers=pos).status_code == 403
    assert client.get(started.headers["Location"], headers=pos).status_code == 403
    assert client.get("/api/v1/campaigns/999", headers=admin).status_code == 404


def test_win_back_from_the_command_line(app, client, runner, pos) -> None:
    _lapsed(app, client, pos, 3, 100)
    out = runner.invoke(
        args=[
            "loyalty",
            "win-back",
            "--inactive-days",
            "30",
            "--kind",
            "amount",
            "--value",
            "300",
            "--valid-days",
            "14",
            "--dry-run",
        ]
    )
    assert out.exit_code == 0 and "3 eligible, would issue 3" in out.output
    out = runner.invoke(
        args=[
            "loyalty",
            "win-back",
            "--inactive-days",
            "30",
            "--kind",
            "amount",
            "--value",
            "300",
            "--valid-days",
            "14",
        ]
    )
    assert "issued 3" in out.output


def test_a_purchase_with_voucher_codes_redeems_them_in_its_transaction(
    app, client, admin, pos, member
) -> None:
    code = goodwill(client, admin, member, value=300)["code"]
    sale = {"member_id": member["id"], "currency": "EUR", "amount": 2000}
    r = client.post(
        "/api/v1/purchases",
        json={**sale, "external_id": "p-1", "voucher_codes": [code.lower()]},
        headers=pos,
    )
    assert r.status_code == 201 and r.json["vouchers_redeemed"] == [{"code": code, "discount": 300}]
    assert client.get(f"/api/v1/vouchers/{code}", headers=pos).json["status"] == "used"
    # the voucher again: the whole purchase is refused, nothing is written
    r = client.post(
        "/api/v1/purchases",
        json={**sale, "external_id": "p-2", "voucher_codes": [code]},
        headers=pos,
    )
    assert (r.status_code, r.json["code"]) == (422, "voucher_used")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Purchase)) == 1
    other = client.post("/api/v1/members", json={}, headers=pos).json
    theirs = goodwill(client, admin, other)["code"]
    r = client.post(
        "/api/v1/purchases",
        json={**sale, "external_id": "p-3", "voucher_codes": [theirs]},
        headers=pos,
    )
    assert r.json["code"] == "voucher_wrong_member"
    assert (
        client.get(f"/api/v1/members/{member['id']}", headers=pos).json["balance"]["points"] == 20
    )


def test_staff_void_an_unused_voucher(client, admin, pos, member) -> None:
    code = goodwill(client, admin, member)["code"]
    assert (
        client.post(
            f"/api/v1/vouchers/{code}/void", json={"reason": "issued twice"}, headers=pos
        ).status_code
        == 403
    )
    r = client.post(f"/api/v1/vouchers/{code}/void", json={"reason": "issued twice"}, headers=admin)
    assert r.status_code == 200 and r.json["status"] == "void"
    assert redeem(client, pos, code).json["code"] == "voucher_void"
    used = goodwill(client, admin, member)["code"]
    redeem(client, pos, used)
    r = client.post(f"/api/v1/vouchers/{used}/void", json={"reason": "x"}, headers=admin)
    assert (r.status_code, r.json["code"]) == (422, "voucher_used")


def test_the_purchase_record_shows_the_come_back_voucher_it_issued(
    client, admin, pos, member
) -> None:
    client.put("/api/v1/program", json={"come_back_policy": COME_BACK}, headers=admin)
    sale = {"member_id": member["id"], "currency": "EUR", "external_id": "p-1", "amount": 2500}
    posted = client.post("/api/v1/purchases", json=sale, headers=pos).json
    detail = client.get(f"/api/v1/purchases/{posted['id']}", headers=pos).json
    assert detail["vouchers_issued"] == posted["vouchers_issued"] != []
