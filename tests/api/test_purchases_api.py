"""Purchases, returns, batch, quote, adjustments and the ledger at the HTTP edge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from loyalty.domain import idempotency, purchases
from loyalty.extensions import db
from loyalty.models import ApiClient, IdempotencyRecord, LedgerEntry, Purchase, Return


@pytest.fixture
def member(client, pos) -> dict:
    return client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json


def sale(member: dict, external_id: str = "sale-1", amount: int = 2599, **extra) -> dict:
    return {
        "external_id": external_id,
        "card_number": member["card_number"],
        "amount": amount,
        "currency": "EUR",
        **extra,
    }


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_the_tills_day(client, pos, admin, member) -> None:
    """Enrol, quote, purchase, retry, return half, read the ledger."""
    q = client.post(
        "/api/v1/checkout/quote",
        json={"card_number": member["card_number"], "amount": 2599, "currency": "EUR"},
        headers=pos,
    )
    assert q.status_code == 200 and q.json["points_earned"] == 25

    headers = {**pos, "Idempotency-Key": "till-7-receipt-1"}
    first = client.post("/api/v1/purchases", json=sale(member), headers=headers)
    assert first.status_code == 201
    assert first.json["points_earned"] == 25
    assert first.json["balance"] == {"points": 25, "held": 0, "pending": 0, "available": 25}
    assert first.json["vouchers_issued"] == []

    retry = client.post("/api/v1/purchases", json=sale(member), headers=headers)
    assert (retry.status_code, retry.json) == (201, first.json)
    assert retry.headers["Idempotent-Replayed"] == "true"

    again = client.post("/api/v1/purchases", json=sale(member), headers=pos)  # no key
    assert again.status_code == 200 and again.json["id"] == first.json["id"]
    assert again.json["balance"]["points"] == 25

    r = client.post(
        f"/api/v1/purchases/{first.json['id']}/returns",
        json={"external_id": "ret-1", "amount": 1300},
        headers=pos,
    )
    assert r.status_code == 201
    assert (r.json["points_reversed"], r.json["balance"]["points"]) == (12, 13)

    ledger = client.get(f"/api/v1/members/{member['id']}/ledger", headers=admin)
    assert ledger.status_code == 200
    assert [(e["kind"], e["points"], e["balance_after"]) for e in ledger.json] == [
        ("reverse", -12, 13),
        ("earn", 25, 25),
    ]
    detail = client.get(f"/api/v1/purchases/{first.json['id']}", headers=pos).json
    assert detail["returned_amount"] == 1300 and detail["points_reversed"] == 12
    assert [r["external_id"] for r in detail["returns"]] == ["ret-1"]
    assert [e["kind"] for e in detail["ledger_entries"]] == ["earn", "reverse"]


def test_same_key_with_another_body_is_409(client, pos, member) -> None:
    headers = {**pos, "Idempotency-Key": "k"}
    assert client.post("/api/v1/purchases", json=sale(member), headers=headers).status_code == 201
    r = client.post("/api/v1/purchases", json=sale(member, amount=100), headers=headers)
    assert r.status_code == 409 and r.json["code"] == "idempotency_key_reused"


def test_a_rolled_back_first_attempt_stores_nothing_and_the_retry_performs_it(
    app, client, pos, member, monkeypatch
) -> None:
    """A crash between the effect and the commit: the retry with the same key runs for real."""
    real_store = idempotency.store

    def crash(*args, **kwargs):
        raise RuntimeError("power cut before commit")

    monkeypatch.setattr(idempotency, "store", crash)
    headers = {**pos, "Idempotency-Key": "till-7-receipt-9"}
    r = client.post("/api/v1/purchases", json=sale(member), headers=headers)
    assert r.status_code == 500  # the injected crash
    assert count(app, Purchase) == count(app, LedgerEntry) == count(app, IdempotencyRecord) == 0

    monkeypatch.setattr(idempotency, "store", real_store)
    r = client.post("/api/v1/purchases", json=sale(member), headers=headers)
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    assert r.json["balance"]["points"] == 25
    assert count(app, Purchase) == count(app, LedgerEntry) == 1


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"amount": -1}, 422, "validation_error", "amount"),
        ({"amount": 19.99}, 422, "validation_error", "amount"),
        ({"amount": "1999"}, 422, "validation_error", "amount"),
        ({"amount": 10**13}, 422, "validation_error", "amount"),
        ({"external_id": ""}, 422, "validation_error", "external_id"),
        ({"external_id": "x" * 256}, 422, "validation_error", "external_id"),
        ({"currency": "USD"}, 422, "currency_mismatch", "currency"),
        ({"currency": "EURO"}, 422, "validation_error", "currency"),
        ({"card_number": "9900000000000003"}, 422, "invalid_card_number", "card_number"),
        ({"card_number": "9900000000000010"}, 404, "not_found", "card_number"),
        ({"member_id": 999999}, 422, "member_mismatch", "member_id"),
        ({"occurred_at": "2026-01-01T10:00:00"}, 422, "validation_error", "occurred_at"),
        (
            {"lines": [{"sku": "A", "quantity": 0, "unit_price": 1}]},
            422,
            "validation_error",
            "lines.0.quantity",
        ),
        ({"tip": 5}, 422, "validation_error", "tip"),
    ],
)
def test_bad_purchases_are_refused_with_the_field(
    app, client, pos, member, change, status, code, field
) -> None:
    r = client.post("/api/v1/purchases", json={**sale(member), **change}, headers=pos)
    assert (r.status_code, r.json["code"]) == (status, code), r.json
    assert field in r.json["errors"], r.json
    assert count(app, Purchase) == 0


def test_neither_card_nor_member_is_422(client, pos) -> None:
    r = client.post(
        "/api/v1/purchases", json={"external_id": "a", "amount": 1, "currency": "EUR"}, headers=pos
    )
    assert r.status_code == 422 and "card_number" in r.json["errors"]


def test_a_purchase_far_in_the_future_is_refused(client, pos, member) -> None:
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    r = client.post("/api/v1/purchases", json=sale(member, occurred_at=later), headers=pos)
    assert r.status_code == 422 and "occurred_at" in r.json["errors"]


def test_a_blocked_card_cannot_earn(client, pos, admin, member) -> None:
    client.post(f"/api/v1/cards/{member['card_number']}/block", headers=admin)
    r = client.post("/api/v1/purchases", json=sale(member), headers=pos)
    assert r.status_code == 422 and r.json["code"] == "card_blocked"


def test_scopes(client, api_key, member) -> None:
    assert (
        client.post("/api/v1/purchases", json=sale(member), headers=api_key("reports")).status_code
        == 403
    )
    assert (
        client.post(
            "/api/v1/purchases", json=sale(member, "w-1"), headers=api_key("webshop")
        ).status_code
        == 201
    )
    assert (
        client.post(
            "/api/v1/purchases", json=sale(member, "a-1"), headers=api_key("admin")
        ).status_code
        == 201
    )
    assert (
        client.get(f"/api/v1/members/{member['id']}/ledger", headers=api_key("pos")).status_code
        == 403
    )


def test_returns_errors(client, pos, member) -> None:
    p = client.post("/api/v1/purchases", json=sale(member, amount=1000), headers=pos).json
    url = f"/api/v1/purchases/{p['id']}/returns"
    assert (
        client.post(
            "/api/v1/purchases/999999/returns", json={"external_id": "r", "amount": 1}, headers=pos
        ).status_code
        == 404
    )
    r = client.post(url, json={"external_id": "r", "amount": 0}, headers=pos)
    assert r.status_code == 422 and "amount" in r.json["errors"]
    r = client.post(url, json={"external_id": "r", "amount": 1001}, headers=pos)
    assert r.status_code == 422 and r.json["code"] == "return_exceeds_purchase"
    ok = client.post(url, json={"external_id": "r", "amount": 1000}, headers=pos)
    assert ok.status_code == 201 and ok.json["points_reversed"] == 10
    dup = client.post(url, json={"external_id": "r", "amount": 1000}, headers=pos)
    assert dup.status_code == 200 and dup.json["id"] == ok.json["id"]


def test_batch_each_item_on_its_own_in_order(app, client, pos, member) -> None:
    body = {
        "purchases": [
            sale(member, "b-1", 1000),
            sale(member, "b-1", 1000),  # duplicate of the one before
            sale(member, "b-2", -5),  # schema error
            sale(member, "b-3", 1000, currency="USD"),  # rule error
            {"external_id": 5},  # garbage
            sale(member, "b-4", 2000),
        ]
    }
    r = client.post("/api/v1/purchases/batch", json=body, headers=pos)
    assert r.status_code == 200
    results = r.json["results"]
    assert [x["status"] for x in results] == [
        "created",
        "duplicate",
        "rejected",
        "rejected",
        "rejected",
        "created",
    ]
    assert results[0]["purchase_id"] == results[1]["purchase_id"]
    assert results[2]["error"]["errors"] == {
        "amount": ["Must be greater than or equal to 0 and less than or equal to 1000000000000."]
    }
    assert results[3]["error"]["code"] == "currency_mismatch"
    assert results[4]["external_id"] is None and results[4]["error"]["code"] == "validation_error"
    assert count(app, Purchase) == 2
    member_now = client.get(f"/api/v1/members/{member['id']}", headers=pos).json
    assert member_now["balance"]["points"] == 30


def test_batch_is_limited_to_500_and_replays_with_its_key(client, pos, member) -> None:
    r = client.post(
        "/api/v1/purchases/batch",
        json={"purchases": [sale(member, str(i), 1) for i in range(501)]},
        headers=pos,
    )
    assert r.status_code == 422 and "purchases" in r.json["errors"]
    assert (
        client.post("/api/v1/purchases/batch", json={"purchases": []}, headers=pos).status_code
        == 422
    )
    headers = {**pos, "Idempotency-Key": "sync-1"}
    body = {"purchases": [sale(member, "s-1", 100)]}
    first = client.post("/api/v1/purchases/batch", json=body, headers=headers)
    again = client.post("/api/v1/purchases/batch", json=body, headers=headers)
    assert first.json["results"][0]["status"] == "created"
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    other = client.post(
        "/api/v1/purchases/batch", json={"purchases": [sale(member, "s-2", 1)]}, headers=headers
    )
    assert other.status_code == 409


def test_quote_has_no_side_effects_and_checks_like_a_purchase(app, client, pos, member) -> None:
    body = {"card_number": member["card_number"], "amount": 1999, "currency": "EUR"}
    r = client.post("/api/v1/checkout/quote", json=body, headers=pos)
    assert r.status_code == 200
    assert r.json["balance"] == {"points": 0, "held": 0, "pending": 0, "available": 0}
    assert r.json["balance_after"] == {"points": 19, "held": 0, "pending": 0, "available": 19}
    assert r.json["awards"] == [{"kind": "earn", "points": 19, "reason": "purchase"}]
    assert count(app, LedgerEntry) == 0
    r = client.post("/api/v1/checkout/quote", json={**body, "currency": "GBP"}, headers=pos)
    assert r.status_code == 422 and r.json["code"] == "currency_mismatch"


def test_adjustments_and_the_ledger_pages(client, pos, admin, member) -> None:
    url = f"/api/v1/members/{member['id']}/adjustments"
    for points in (5, 7, -3):
        r = client.post(url, json={"points": points, "reason": "correction"}, headers=admin)
        assert r.status_code == 201 and r.json["points"] == points
    assert r.json["balance"] == {"points": 9, "held": 0, "pending": 0, "available": 9}
    r = client.post(url, json={"points": 0, "reason": "nothing"}, headers=admin)
    assert r.status_code == 422 and "points" in r.json["errors"]
    r = client.post(url, json={"points": 5, "reason": ""}, headers=admin)
    assert r.status_code == 422 and "reason" in r.json["errors"]
    r = client.post(url, json={"points": -10, "reason": "too much"}, headers=admin)
    assert r.status_code == 422 and r.json["code"] == "insufficient_points"
    assert (
        client.post(
            "/api/v1/members/999999/adjustments", json={"points": 1, "reason": "x"}, headers=admin
        ).status_code
        == 404
    )

    page = client.get(f"/api/v1/members/{member['id']}/ledger?page_size=2", headers=admin)
    assert [e["points"] for e in page.json] == [-3, 7] and page.headers["X-Total-Count"] == "3"
    page2 = client.get(f"/api/v1/members/{member['id']}/ledger?page_size=2&page=2", headers=admin)
    assert [e["balance_after"] for e in page2.json] == [5]
    assert client.get("/api/v1/members/999999/ledger", headers=admin).status_code == 404


def test_a_retried_adjustment_is_applied_once(client, admin, member) -> None:
    url = f"/api/v1/members/{member['id']}/adjustments"
    headers = {**admin, "Idempotency-Key": "adj-1"}
    first = client.post(url, json={"points": 40, "reason": "complaint"}, headers=headers)
    again = client.post(url, json={"points": 40, "reason": "complaint"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert (
        client.get(f"/api/v1/members/{member['id']}", headers=admin).json["balance"]["points"] == 40
    )
    other = client.post(url, json={"points": 41, "reason": "complaint"}, headers=headers)
    assert other.status_code == 409 and other.json["code"] == "idempotency_key_reused"


def test_a_repeated_external_id_answers_with_the_first_purchase(app, client, pos, member) -> None:
    lines = [{"sku": "A", "category": "tea", "quantity": 2, "unit_price": 500}]
    body = sale(member, "r-1", 1000, lines=lines)
    first = client.post("/api/v1/purchases", json=body, headers=pos)
    again = client.post("/api/v1/purchases", json=body, headers=pos)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"] and again.json["points_earned"] == 10
    assert again.json["balance"] == first.json["balance"]
    assert count(app, Purchase) == count(app, LedgerEntry) == 1


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"amount": 1001}, {"amount"}),
        ({"lines": [{"sku": "A", "category": "tea", "quantity": 3, "unit_price": 500}]}, {"lines"}),
        ({"lines": []}, {"lines"}),
        ({"amount": 999, "lines": None}, {"amount", "lines"}),
    ],
)
def test_a_repeated_external_id_with_other_fields_is_409_naming_them(
    app, client, pos, member, change, fields
) -> None:
    """A till whose receipt counter was reset hears about it instead of losing the sale."""
    lines = [{"sku": "A", "category": "tea", "quantity": 2, "unit_price": 500}]
    body = sale(member, "r-1", 1000, lines=lines)
    assert client.post("/api/v1/purchases", json=body, headers=pos).status_code == 201
    repeat = {k: v for k, v in {**body, **change}.items() if v is not None}
    r = client.post("/api/v1/purchases", json=repeat, headers=pos)
    assert r.status_code == 409 and r.json["code"] == "external_id_conflict"
    assert set(r.json["errors"]) == fields
    assert count(app, Purchase) == count(app, LedgerEntry) == 1


def test_a_repeated_external_id_for_another_member_is_409_member_id(client, pos, member) -> None:
    other = client.post("/api/v1/members", json={"name": "Bo"}, headers=pos).json
    assert client.post("/api/v1/purchases", json=sale(member, "x"), headers=pos).status_code == 201
    r = client.post("/api/v1/purchases", json=sale(other, "x"), headers=pos)
    assert r.status_code == 409 and set(r.json["errors"]) == {"member_id"}


def test_a_repeated_return_external_id_with_other_fields_is_409(client, pos, member) -> None:
    lines = [
        {"sku": "A", "quantity": 2, "unit_price": 300},
        {"sku": "B", "quantity": 1, "unit_price": 400},
    ]
    p1 = client.post(
        "/api/v1/purchases", json=sale(member, "p1", 1000, lines=lines), headers=pos
    ).json
    p2 = client.post(
        "/api/v1/purchases", json=sale(member, "p2", 1000, lines=lines), headers=pos
    ).json
    body = {"external_id": "ret", "amount": 400, "lines": [{"sku": "A", "quantity": 1}]}
    ok = client.post(f"/api/v1/purchases/{p1['id']}/returns", json=body, headers=pos)
    same = client.post(f"/api/v1/purchases/{p1['id']}/returns", json=body, headers=pos)
    assert (ok.status_code, same.status_code) == (201, 200) and same.json["id"] == ok.json["id"]
    # line by line: one of the two A (6 of the 10 points) takes back 3, whatever the amount
    assert same.json["points_reversed"] == 3 and same.json["balance"]["points"] == 17
    cases = [
        (p1["id"], {**body, "amount": 300}, {"amount"}),
        (p1["id"], {**body, "lines": [{"sku": "B", "quantity": 1}]}, {"lines"}),
        (p2["id"], body, {"purchase_id"}),
    ]
    for purchase_id, repeat, fields in cases:
        r = client.post(f"/api/v1/purchases/{purchase_id}/returns", json=repeat, headers=pos)
        assert r.status_code == 409 and r.json["code"] == "external_id_conflict"
        assert set(r.json["errors"]) == fields


def test_a_replay_runs_nothing_again(client, pos, member, monkeypatch) -> None:
    """The key is looked up first: a retry answers from the record, the domain is not called."""
    headers = {**pos, "Idempotency-Key": "till-1-42"}
    first = client.post("/api/v1/purchases", json=sale(member), headers=headers)
    calls: list = []
    monkeypatch.setattr(purchases, "record_purchase", lambda *a, **k: calls.append(a))
    again = client.post("/api/v1/purchases", json=sale(member), headers=headers)
    assert again.status_code == 201 and again.json == first.json and calls == []
    assert again.headers["Idempotent-Replayed"] == "true"


def test_batch_rejections_have_the_problem_shape(client, pos, member) -> None:
    body = {"purchases": [sale(member, "b-1", 100, currency="USD"), sale(member, "b-2", -1)]}
    results = client.post("/api/v1/purchases/batch", json=body, headers=pos).json["results"]
    for item, code in zip(results, ["currency_mismatch", "validation_error"], strict=True):
        error = item["error"]
        assert set(error) == {"type", "title", "status", "detail", "code", "errors"}
        assert (error["status"], error["code"]) == (422, code)
        assert error["type"] == f"urn:loyalty:problem:{code}"


# returns: the contract as written ---------------------------------------------------------------
LINES = [
    {"sku": "A", "quantity": 2, "unit_price": 300},
    {"sku": "B", "quantity": 1, "unit_price": 400},
    {"sku": "A", "quantity": 1, "unit_price": 250},  # the same sku on a second line
]


def returned(client, pos, purchase_id: int) -> tuple[int, int, list[str]]:
    """(returned_amount, points_reversed, the returns' external_ids) as GET /purchases shows."""
    p = client.get(f"/api/v1/purchases/{purchase_id}", headers=pos).json
    return p["returned_amount"], p["points_reversed"], [r["external_id"] for r in p["returns"]]


def test_a_return_is_not_dated_before_its_purchase(client, pos, member) -> None:
    bought = datetime.now(UTC) - timedelta(days=2)
    p = client.post(
        "/api/v1/purchases",
        json=sale(member, "p-1", 1000, occurred_at=bought.isoformat()),
        headers=pos,
    ).json
    url = f"/api/v1/purchases/{p['id']}/returns"
    early = {
        "external_id": "r-1",
        "amount": 100,
        "occurred_at": (bought - timedelta(seconds=1)).isoformat(),
    }
    r = client.post(url, json=early, headers=pos)
    assert (r.status_code, r.json["code"]) == (422, "return_before_purchase")
    assert list(r.json["errors"]) == ["occurred_at"]
    assert returned(client, pos, p["id"]) == (0, 0, [])

    same_moment = {**early, "occurred_at": bought.isoformat()}
    ok = client.post(url, json=same_moment, headers=pos)
    assert ok.status_code == 201 and ok.json["points_reversed"] == 1
    assert datetime.fromisoformat(ok.json["occurred_at"]) == bought


def test_a_return_without_a_date_of_a_purchase_dated_ahead_is_dated_at_the_purchase(
    client, pos, member
) -> None:
    """A till's clock may run ahead (up to 24 h): the return's default date is then not now."""
    ahead = datetime.now(UTC) + timedelta(hours=1)
    p = client.post(
        "/api/v1/purchases",
        json=sale(member, "p-1", 1000, occurred_at=ahead.isoformat()),
        headers=pos,
    ).json
    r = client.post(
        f"/api/v1/purchases/{p['id']}/returns",
        json={"external_id": "r-1", "amount": 1000},
        headers=pos,
    )
    assert r.status_code == 201 and datetime.fromisoformat(r.json["occurred_at"]) == ahead


def test_return_lines_name_skus_of_the_purchase_in_quantities_still_left(
    client, pos, member
) -> None:
    p = client.post(
        "/api/v1/purchases", json=sale(member, "p-1", 1250, lines=LINES), headers=pos
    ).json
    url = f"/api/v1/purchases/{p['id']}/returns"

    def ret(external_id: str, *lines: tuple[str, int]):
        body = {
            "external_id": external_id,
            "amount": 100,
            "lines": [{"sku": sku, "quantity": q} for sku, q in lines],
        }
        return client.post(url, json=body, headers=pos)

    r = ret("r-0", ("A", 1), ("C", 1), ("D", 2))
    assert (r.status_code, r.json["code"]) == (422, "sku_not_in_purchase")
    assert set(r.json["errors"]) == {"lines.1.sku", "lines.2.sku"}
    r = ret("r-0", ("A", 4))  # 3 of A were bought (over two lines)
    assert (r.status_code, r.json["code"]) == (422, "return_exceeds_purchase")
    assert r.json["errors"] == {"lines.0.quantity": ["3 of sku 'A' left to return, not 4."]}
    assert returned(client, pos, p["id"]) == (0, 0, [])

    assert ret("r-1", ("A", 2)).status_code == 201
    r = ret("r-2", ("A", 1), ("B", 1), ("A", 1))  # one A left: the second A line is one too many
    assert (r.status_code, r.json["code"]) == (422, "return_exceeds_purchase")
    assert r.json["errors"] == {"lines.2.quantity": ["0 of sku 'A' left to return, not 1."]}
    assert ret("r-2", ("A", 1), ("B", 1)).status_code == 201
    r = ret("r-3", ("B", 1))
    assert r.status_code == 422 and r.json["errors"] == {
        "lines.0.quantity": ["0 of sku 'B' left to return, not 1."]
    }
    assert ret("r-3").status_code == 201  # without lines: the amount alone is checked
    # line by line: every line came back, so all 12 points did (A 8 of 3 units: 5 then 3; B 4);
    # r-3 without lines is pro rata, and 12 × 300 // 1250 = 2 were already taken back
    assert returned(client, pos, p["id"]) == (300, 12, ["r-1", "r-2", "r-3"])
    again = ret("r-2", ("A", 1), ("B", 1))  # a retry of a return is answered, not re-checked
    assert again.status_code == 200 and again.json["external_id"] == "r-2"

    plain = client.post("/api/v1/purchases", json=sale(member, "p-2", 1000), headers=pos).json
    r = client.post(
        f"/api/v1/purchases/{plain['id']}/returns",
        json={"external_id": "r-9", "amount": 100, "lines": [{"sku": "A", "quantity": 1}]},
        headers=pos,
    )
    assert r.status_code == 422 and r.json["errors"] == {
        "lines.0.sku": ["The purchase has no line with sku 'A'."]
    }


@pytest.mark.parametrize(("currency", "status"), [("EUR", 201), ("eur", 201), ("USD", 422)])
def test_a_return_may_state_its_currency_which_must_be_the_purchases(
    client, pos, member, currency, status
) -> None:
    p = client.post("/api/v1/purchases", json=sale(member, "p-1", 1000), headers=pos).json
    r = client.post(
        f"/api/v1/purchases/{p['id']}/returns",
        json={"external_id": "r-1", "amount": 500, "currency": currency},
        headers=pos,
    )
    assert r.status_code == status
    if status == 422:
        assert r.json["code"] == "currency_mismatch" and list(r.json["errors"]) == ["currency"]
        assert returned(client, pos, p["id"]) == (0, 0, [])
    else:
        assert r.json["points_reversed"] == 5 and r.json["balance"]["points"] == 5


def test_bought_online_returned_in_a_shop_is_recorded_under_the_shop(
    app, client, api_key, pos, member
) -> None:
    webshop = api_key("webshop", name="webshop")
    p = client.post("/api/v1/purchases", json=sale(member, "web-1", 2000), headers=webshop).json
    r = client.post(
        f"/api/v1/purchases/{p['id']}/returns",
        json={"external_id": "web-1", "amount": 2000},
        headers=pos,
    )
    assert r.status_code == 201 and r.json["points_reversed"] == 20
    detail = client.get(f"/api/v1/purchases/{p['id']}", headers=webshop).json
    assert [(e["kind"], e["points"], e["actor"]) for e in detail["ledger_entries"]] == [
        ("earn", 20, "webshop"),
        ("reverse", -20, "till"),
    ]
    with app.app_context():
        ret = db.session.get(Return, r.json["id"])
        assert ret is not None
        assert db.session.get(ApiClient, ret.api_client_id).name == "till"
    # the shop's return numbers are its own: the webshop may use the same external_id
    r = client.post(
        f"/api/v1/purchases/{p['id']}/returns",
        json={"external_id": "web-1", "amount": 1},
        headers=webshop,
    )
    assert (r.status_code, r.json["code"]) == (422, "return_exceeds_purchase")
