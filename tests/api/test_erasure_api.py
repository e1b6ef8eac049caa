"""Erasure that erases: after DELETE /members/{id} no response and no row holds the person's
name, e-mail or phone (replays of earlier requests included), and the account earns nothing
more on any path (till, batch, Stripe webhook, import)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from sqlalchemy import func, select, text

from loyalty.domain.erasure import REDACTED
from loyalty.extensions import db
from loyalty.models import LedgerEntry, Member, Purchase

NAME, EMAIL, PHONE = "Zoë Kwakkelstein", "zoe.kwakkelstein@example.com", "+31612345678"
# what must not be readable anywhere: the fields, and recognisable parts of them
TRACES = ("kwakkelstein", "zoë", "zoe.", "612345678")


def traces_in(something: Any) -> list[str]:
    """The personal traces found in a text, a JSON document or a response body."""
    if not isinstance(something, str):
        something = json.dumps(something, ensure_ascii=False)
    low = something.lower()
    return [t for t in TRACES if t in low]


def post(client, url: str, body: dict | None, headers: dict, key: str):
    return client.post(url, json=body, headers={**headers, "Idempotency-Key": key})


@pytest.fixture
def erased_history(client, pos, admin) -> dict[str, Any]:
    """A member with personal data in every place free text is kept, a second member whose note
    names the first one's e-mail, every POST sent with an Idempotency-Key; then erased."""
    calls: list[tuple[str, dict | None, dict, str]] = []

    def call(url: str, body: dict | None, headers: dict, status: int = 201) -> dict:
        key = f"key-{len(calls)}"
        r = post(client, url, body, headers, key)
        assert r.status_code == status, r.json
        calls.append((url, body, headers, key))
        return r.json

    m = call("/api/v1/members", {"name": NAME, "email": EMAIL, "phone": PHONE}, admin)
    assert (m["name"], m["email"], m["phone"]) == (NAME, EMAIL, PHONE)
    mid, card = m["id"], m["card_number"]
    call(
        f"/api/v1/members/{mid}/adjustments",
        {"points": 50, "reason": f"Called {NAME} back on {PHONE}"},
        admin,
    )
    goodwill = call(
        f"/api/v1/members/{mid}/vouchers",
        {"kind": "amount", "value": 500, "valid_days": 30, "reason": f"Complaint by {EMAIL}"},
        admin,
    )
    voided = call(
        f"/api/v1/members/{mid}/vouchers",
        {"kind": "amount", "value": 300, "valid_days": 30, "reason": "sorry"},
        admin,
    )
    call(f"/api/v1/vouchers/{voided['code']}/void", {"reason": f"{NAME} asked"}, admin, 200)
    purchase = call(
        "/api/v1/purchases",
        {"external_id": "t-1", "card_number": card, "amount": 2500, "currency": "EUR"},
        pos,
    )
    call(
        "/api/v1/feedback",
        {"member_id": mid, "purchase_id": purchase["id"], "nps": 9, "comment": f"Zoë: {PHONE}"},
        pos,
    )
    second = call(f"/api/v1/members/{mid}/cards", None, admin)["card_number"]
    call(f"/api/v1/cards/{second}/block", {"reason": f"lost by {NAME}"}, admin, 200)
    other = call("/api/v1/members", {"name": "Other"}, pos)
    call(
        f"/api/v1/members/{other['id']}/adjustments",
        {"points": 5, "reason": f"moved from {EMAIL.upper()}"},
        admin,
    )
    before = client.get(f"/api/v1/members/{mid}/ledger", headers=admin).json
    assert traces_in(before)  # the test can fail: the traces are there before the erasure

    assert client.delete(f"/api/v1/members/{mid}", headers=admin).status_code == 204
    return {
        "member_id": mid,
        "other_id": other["id"],
        "cards": [card, second],
        "vouchers": [goodwill["code"], voided["code"]],
        "purchase_id": purchase["id"],
        "calls": calls,
        "ledger_before": before,
    }


def test_no_response_shows_the_erased_persons_data_replays_included(
    client, pos, admin, erased_history
) -> None:
    h = erased_history
    mid = h["member_id"]
    reads = [
        f"/api/v1/members/{mid}",
        f"/api/v1/members/{mid}/ledger",
        f"/api/v1/members/{mid}/vouchers",
        f"/api/v1/members/{h['other_id']}/ledger",
        f"/api/v1/purchases/{h['purchase_id']}",
        "/api/v1/members?q=kwakkel",
        f"/api/v1/members?email={EMAIL}",
        *(f"/api/v1/cards/{c}" for c in h["cards"]),
        *(f"/api/v1/vouchers/{v}" for v in h["vouchers"]),
    ]
    for url in reads:
        r = client.get(url, headers=admin)
        assert r.status_code == 200, (url, r.json)
        assert traces_in(r.get_data(as_text=True)) == [], url
    assert client.get(f"/api/v1/members?email={EMAIL}", headers=admin).json == []

    for url, body, headers, key in h["calls"]:  # every retry replays, without the person
        r = post(client, url, body, headers, key)
        assert r.headers.get("Idempotent-Replayed") == "true", url
        assert r.status_code in (200, 201), url
        assert traces_in(r.get_data(as_text=True)) == [], url

    replay = post(client, "/api/v1/members", h["calls"][0][1], admin, "key-0").json
    assert (replay["id"], replay["name"], replay["email"], replay["phone"]) == (
        mid,
        None,
        None,
        None,
    )
    # a replay is still a replay: nothing ran twice
    ledger = client.get(f"/api/v1/members/{mid}/ledger", headers=admin).json
    assert [(e["id"], e["points"]) for e in ledger] == [
        (e["id"], e["points"]) for e in h["ledger_before"]
    ]
    assert [e["note"] for e in ledger if e["kind"] == "adjust"] == [REDACTED]


def test_no_row_in_any_table_holds_the_erased_persons_data(app, erased_history) -> None:
    """Audit details, feedback comments, card block reasons, stored responses: every column of
    every row, read straight from the database."""
    with app.app_context():
        found = {}
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(select(table)).mappings():
                hits = traces_in({k: str(v) for k, v in row.items()})
                if hits:
                    found.setdefault(table.name, []).append(hits)
        assert found == {}
        # what was there is marked, not silently gone
        comments = db.session.execute(text("SELECT comment FROM feedback")).scalars().all()
        assert comments == [REDACTED]
        reasons = db.session.execute(text("SELECT reason FROM vouchers ORDER BY id")).scalars()
        assert list(reasons) == [REDACTED, REDACTED]
        blocks = db.session.execute(text("SELECT block_reason FROM cards ORDER BY id")).scalars()
        assert list(blocks) == ["member_erased", REDACTED, None]  # the other member's card


def test_an_erased_member_earns_nothing_on_any_path_and_gives_no_feedback(
    client, pos, admin, app
) -> None:
    m = post(client, "/api/v1/members", {"name": NAME}, pos, "e").json
    purchase = {"amount": 1000, "currency": "EUR"}
    before = client.post(
        "/api/v1/purchases",
        json={"external_id": "before", "member_id": m["id"], **purchase},
        headers=pos,
    )
    assert before.status_code == 201 and before.json["points_earned"] == 10
    assert client.delete(f"/api/v1/members/{m['id']}", headers=admin).status_code == 204

    for ref in ({"member_id": m["id"]}, {"card_number": m["card_number"]}):
        field = next(iter(ref))
        r = client.post(
            "/api/v1/purchases",
            json={"external_id": f"till-{field}", **ref, **purchase},
            headers=pos,
        )
        assert (r.status_code, r.json["code"], list(r.json["errors"])) == (
            409,
            "member_erased",
            [field],
        )
    batch = [
        {"external_id": "b-1", "member_id": m["id"], **purchase},
        {"external_id": "b-2", "card_number": m["card_number"], **purchase},
    ]
    r = client.post("/api/v1/purchases/batch", json={"purchases": batch}, headers=pos)
    assert r.status_code == 200
    assert [(i["status"], i["error"]["code"]) for i in r.json["results"]] == [
        ("rejected", "member_erased"),
        ("rejected", "member_erased"),
    ]
    r = client.post(
        "/api/v1/feedback", json={"member_id": m["id"], "comment": "hello"}, headers=pos
    )
    assert (r.status_code, r.json["code"]) == (409, "member_erased")
    r = client.post(f"/api/v1/feedback/{before.json['feedback_token']}", json={"comment": "hi"})
    assert (r.status_code, r.json["code"]) == (409, "member_erased")
    r = client.post("/api/v1/checkout/quote", json={"member_id": m["id"], **purchase}, headers=pos)
    assert (r.status_code, r.json["code"]) == (409, "member_erased")
    r = client.post(f"/api/v1/members/{m['id']}/cards", headers=admin)
    assert (r.status_code, r.json["code"]) == (409, "member_erased")

    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Purchase)) == 1
        assert db.session.get(Member, m["id"]).points == 10


def _signed(payload: bytes, secret: str) -> str:
    t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def test_a_stripe_payment_of_an_erased_member_is_refused(
    client, pos, admin, app, monkeypatch
) -> None:
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRET", "whsec_erasure")
    m = client.post("/api/v1/members", json={"name": NAME}, headers=pos).json
    assert client.delete(f"/api/v1/members/{m['id']}", headers=admin).status_code == 204
    for i, metadata in enumerate(
        ({"loyalty_member_id": str(m["id"])}, {"loyalty_card_number": m["card_number"]})
    ):
        event = {
            "id": f"evt_erased_{i}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": f"pi_erased_{i}",
                    "object": "payment_intent",
                    "amount": 1500,
                    "amount_received": 1500,
                    "currency": "eur",
                    "status": "succeeded",
                    "created": int(time.time()),
                    "metadata": metadata,
                }
            },
        }
        payload = json.dumps(event).encode()
        r = client.post(
            "/api/v1/stripe/webhook",
            data=payload,
            content_type="application/json",
            headers={"Stripe-Signature": _signed(payload, "whsec_erasure")},
        )
        assert r.status_code == 200, r.json  # acknowledged: Stripe retrying would not help
        assert (r.json["status"], r.json["reason"]) == ("rejected", "member_erased"), r.json
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Purchase)) == 0


def test_an_import_row_cannot_reach_an_erased_member(app, runner, client, admin, tmp_path) -> None:
    """Import rows name members by customer_ref, which erasure clears: the erased account earns
    nothing from a later import of the same customer_ref."""
    path = tmp_path / "history.csv"
    path.write_text("customer_ref,external_id,occurred_at,amount\ncust-z,h-1,2026-01-05,10\n")
    out = runner.invoke(args=["loyalty", "import-purchases", str(path)])
    assert out.exit_code == 0, out.output
    with app.app_context():
        erased_id = db.session.scalar(select(Member.id).where(Member.external_ref == "cust-z"))
    assert client.delete(f"/api/v1/members/{erased_id}", headers=admin).status_code == 204

    path.write_text("customer_ref,external_id,occurred_at,amount\ncust-z,h-2,2026-01-06,20\n")
    out = runner.invoke(args=["loyalty", "import-purchases", str(path)])
    with app.app_context():
        erased = db.session.get(Member, erased_id)
        assert (erased.points, erased.external_ref) == (10, None)
        assert db.session.scalars(
            select(Purchase.external_id).where(Purchase.member_id == erased_id)
        ).all() == ["h-1"]
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.member_id == erased_id)
            )
            == 1
        )


def test_an_erased_member_gets_no_adjustment_and_no_goodwill_voucher(client, pos, admin, app):
    m = post(client, "/api/v1/members", {"name": NAME}, pos, "adj").json
    assert client.delete(f"/api/v1/members/{m['id']}", headers=admin).status_code == 204
    for points in (25, -1):
        r = client.post(
            f"/api/v1/members/{m['id']}/adjustments",
            json={"points": points, "reason": "after erasure"},
            headers=admin,
        )
        assert (r.status_code, r.json["code"], list(r.json["errors"])) == (
            409,
            "member_erased",
            ["member_id"],
        )
    r = client.post(
        f"/api/v1/members/{m['id']}/vouchers",
        json={"kind": "amount", "value": 500, "valid_days": 30, "reason": "after erasure"},
        headers=admin,
    )
    assert (r.status_code, r.json["code"]) == (409, "member_erased")
    with app.app_context():
        assert db.session.get(Member, m["id"]).points == 0
        assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 0
