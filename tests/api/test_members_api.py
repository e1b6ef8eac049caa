"""The members-and-cards contract of api.md, at the HTTP edge."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from loyalty.domain.cards import luhn_valid

PROBLEM = "application/problem+json"


def enrol(client, headers, **body):
    return client.post("/api/v1/members", json=body, headers=headers)


def test_enrol_then_till_lookup_shows_the_member_with_zero_balance(client, pos) -> None:
    r = enrol(client, pos, name="Ann", email="ann@example.com")
    assert r.status_code == 201, r.json
    m = r.json
    assert luhn_valid(m["card_number"]) and len(m["card_number"]) == 16
    assert m["cards"] == [{"card_number": m["card_number"], "status": "active"}]
    assert m["balance"] == {"points": 0, "held": 0, "pending": 0, "available": 0}
    assert set(m) >= {"id", "name", "card_number", "cards", "balance", "tier", "created_at"}
    # a till reads the card lookup's view: no contact data, not even what it just sent
    assert not set(m) & {"email", "phone", "marketing_consent", "external_ref"}
    assert m["vouchers_issued"] == []  # no welcome policy
    assert m["created_at"].endswith("+00:00")

    r = client.get(f"/api/v1/cards/{m['card_number']}", headers=pos)
    assert r.status_code == 200
    assert r.json == {
        "card_number": m["card_number"],
        "status": "active",
        "member": {"id": m["id"], "name": "Ann", "tier": None},
        "balance": {"points": 0, "held": 0, "pending": 0, "available": 0},
    }


def test_enrol_with_a_pre_printed_card_and_its_errors(client, pos) -> None:
    r = enrol(client, pos, card_number="9900-0000-0000-0002")
    assert r.status_code == 201 and r.json["card_number"] == "9900000000000002"

    r = enrol(client, pos, card_number="9900000000000002")
    assert r.status_code == 409 and r.json["code"] == "card_in_use"
    assert "card_number" in r.json["errors"]

    r = enrol(client, pos, card_number="9900000000000003")
    assert r.status_code == 422 and r.json["code"] == "invalid_card_number"
    assert r.headers["Content-Type"] == PROBLEM
    assert "card_number" in r.json["errors"]


def test_duplicate_email_or_phone_is_409(client, pos) -> None:
    assert enrol(client, pos, email="ann@example.com", phone="+31612345678").status_code == 201
    r = enrol(client, pos, email="  ANN@example.com")
    assert (r.status_code, r.json["code"], list(r.json["errors"])) == (
        409,
        "email_taken",
        ["email"],
    )
    r = enrol(client, pos, phone="+31 6 12 34 56 78")
    assert (r.status_code, r.json["code"], list(r.json["errors"])) == (
        409,
        "phone_taken",
        ["phone"],
    )


def test_bad_fields_are_422_with_each_field_named(client, pos) -> None:
    r = enrol(client, pos, name=5, email="nope", bogus=1)
    assert r.status_code == 422 and r.json["code"] == "validation_error"
    assert set(r.json["errors"]) == {"name", "bogus"}  # schema errors come first, all at once
    r = enrol(client, pos, email="nope")
    assert r.status_code == 422 and list(r.json["errors"]) == ["email"]
    r = enrol(client, pos, phone="12")
    assert r.status_code == 422 and list(r.json["errors"]) == ["phone"]
    r = enrol(client, pos, name="x" * 201)
    assert r.status_code == 422 and list(r.json["errors"]) == ["name"]


def test_get_member_scopes_and_not_found(client, pos, api_key) -> None:
    m = enrol(client, pos, name="Ann").json
    enrolled = {k: v for k, v in m.items() if k != "vouchers_issued"}
    assert client.get(f"/api/v1/members/{m['id']}", headers=pos).json == {
        **enrolled,
        "segment": None,
        "tier_progress": None,
        "next_expiry": None,
    }
    assert client.get(f"/api/v1/members/{m['id']}", headers=api_key("webshop")).status_code == 200
    r = client.get(f"/api/v1/members/{m['id']}", headers=api_key("reports"))
    assert r.status_code == 403 and r.json["code"] == "forbidden"
    for missing in (m["id"] + 1, 2**63, 10**30):
        r = client.get(f"/api/v1/members/{missing}", headers=pos)
        assert r.status_code == 404 and r.json["code"] == "not_found", missing


def test_patch_is_admin_only_and_normalises(client, pos, admin) -> None:
    m = enrol(client, pos, name="Ann", email="ann@example.com").json
    url = f"/api/v1/members/{m['id']}"
    assert client.patch(url, json={"name": "Ann B"}, headers=pos).status_code == 403
    r = client.patch(
        url, json={"email": "Ann.B@Example.com", "marketing_consent": True}, headers=admin
    )
    assert r.status_code == 200
    assert (r.json["email"], r.json["marketing_consent"], r.json["name"]) == (
        "ann.b@example.com",
        True,
        "Ann",
    )
    r = client.patch(url, json={"phone": "not a phone"}, headers=admin)
    assert r.status_code == 422 and list(r.json["errors"]) == ["phone"]
    r = client.patch(url, json={"email": None}, headers=admin)
    assert r.status_code == 200 and r.json["email"] is None


def test_delete_erases_personal_data_keeps_the_member_and_blocks_the_card(
    client, pos, admin
) -> None:
    m = enrol(client, pos, name="Ann", email="ann@example.com", phone="+31612345678").json
    url = f"/api/v1/members/{m['id']}"
    assert client.delete(url, headers=pos).status_code == 403
    r = client.delete(url, headers=admin)
    assert r.status_code == 204 and r.data == b""
    after = client.get(url, headers=admin).json
    assert (after["name"], after["email"], after["phone"]) == (None, None, None)
    assert after["erased_at"] is not None and after["card_number"] is None
    assert after["cards"] == [{"card_number": m["card_number"], "status": "blocked"}]
    assert client.delete(url, headers=admin).status_code == 204  # again: nothing changes
    assert client.get(url, headers=admin).json == after
    r = client.patch(url, json={"name": "again"}, headers=admin)
    assert r.status_code == 409 and r.json["code"] == "member_erased"
    assert enrol(client, pos, email="ann@example.com").status_code == 201


def test_search_by_each_key_is_paginated_newest_first(client, pos, admin) -> None:
    ids = [
        enrol(client, pos, name=f"Ann {i}", email=f"ann{i}@example.com").json["id"]
        for i in range(3)
    ]
    bob = enrol(client, pos, name="Bob", phone="+31612345678").json
    assert client.get("/api/v1/members", headers=pos).status_code == 403

    r = client.get("/api/v1/members?q=ann&page_size=2", headers=admin)
    assert r.status_code == 200
    assert [m["id"] for m in r.json] == [ids[2], ids[1]]
    assert r.headers["X-Total-Count"] == "3"
    assert json.loads(r.headers["X-Pagination"])["total_pages"] == 2
    r = client.get("/api/v1/members?q=ann&page_size=2&page=2", headers=admin)
    assert [m["id"] for m in r.json] == [ids[0]]

    r = client.get("/api/v1/members?email=ANN1@example.com", headers=admin)
    assert [m["id"] for m in r.json] == [ids[1]]
    r = client.get("/api/v1/members?phone=%2B31%206%201234%205678", headers=admin)
    assert [m["id"] for m in r.json] == [bob["id"]]
    r = client.get(f"/api/v1/members?card_number={bob['card_number']}", headers=admin)
    assert [m["id"] for m in r.json] == [bob["id"]]

    assert client.get("/api/v1/members?page_size=101", headers=admin).status_code == 422
    assert client.get("/api/v1/members?page=0", headers=admin).status_code == 422
    r = client.get("/api/v1/members?page=99999999999", headers=admin)
    assert r.status_code == 200 and r.json == []
    r = client.get("/api/v1/members?card_number=123", headers=admin)
    assert r.status_code == 422 and r.json["code"] == "invalid_card_number"


def test_issue_a_second_card_block_the_first_and_look_both_up(client, pos, admin) -> None:
    m = enrol(client, pos, name="Ann").json
    first = m["card_number"]
    r = client.post(f"/api/v1/members/{m['id']}/cards", headers=admin)
    assert r.status_code == 201, r.json
    second = r.json["card_number"]
    assert r.json["member"]["id"] == m["id"] and second != first

    assert client.post(f"/api/v1/cards/{first}/block", headers=pos).status_code == 403
    r = client.post(f"/api/v1/cards/{first}/block", json={"reason": "lost"}, headers=admin)
    assert r.status_code == 200 and r.json["status"] == "blocked"
    r = client.post(f"/api/v1/cards/{first}/block", headers=admin)
    assert r.status_code == 409 and r.json["code"] == "card_already_blocked"

    r = client.get(f"/api/v1/cards/{first}", headers=pos)
    assert r.status_code == 200 and r.json["status"] == "blocked"  # the till sees why
    member = client.get(f"/api/v1/members/{m['id']}", headers=pos).json
    assert member["card_number"] == second
    assert member["cards"] == [
        {"card_number": first, "status": "blocked"},
        {"card_number": second, "status": "active"},
    ]
    r = client.post(f"/api/v1/members/{m['id']}/cards", json={"card_number": first}, headers=admin)
    assert r.status_code == 422 and r.json["code"] == "card_blocked"
    r = client.post("/api/v1/members/999999/cards", headers=admin)
    assert r.status_code == 404


def test_card_lookup_errors(client, pos) -> None:
    r = client.get("/api/v1/cards/9900000000000003", headers=pos)
    assert r.status_code == 422 and r.json["code"] == "invalid_card_number"
    assert r.json["errors"] == {"card_number": [r.json["detail"]]}
    r = client.get("/api/v1/cards/9900000000000002", headers=pos)
    assert r.status_code == 404 and r.json["code"] == "not_found"
    r = client.get("/api/v1/cards/abc", headers=pos)
    assert r.status_code == 422 and r.json["code"] == "invalid_card_number"


def test_letters_in_a_card_number_are_a_mistype_too(client, pos) -> None:
    r = enrol(client, pos, card_number="99000000000000AB")
    assert r.status_code == 422 and r.json["code"] == "invalid_card_number"


def test_booleans_are_json_booleans_only(client, pos, admin) -> None:
    r = enrol(client, pos, marketing_consent=0)
    assert r.status_code == 422 and list(r.json["errors"]) == ["marketing_consent"]
    assert enrol(client, admin, marketing_consent=True).json["marketing_consent"] is True


def test_an_anonymous_card_needs_no_body(client, pos) -> None:
    r = client.post("/api/v1/members", headers=pos)
    assert r.status_code == 201 and r.json["name"] is None and r.json["card_number"]


CARD_LOOKUP_VIEW = {
    "id",
    "name",
    "tier",
    "card_number",
    "cards",
    "balance",
    "created_at",
    "erased_at",
}
CONTACT_DATA = {"email", "phone", "marketing_consent", "external_ref"}


def test_pos_and_webshop_read_the_card_lookup_view_admin_reads_contact_data(
    client, pos, admin, api_key
) -> None:
    body = {
        "name": "Ann",
        "email": "ann@example.com",
        "phone": "+31612345678",
        "marketing_consent": True,
        "external_ref": "crm-7",
    }
    webshop = api_key("webshop")
    m = enrol(client, webshop, **body).json
    assert set(m) >= CARD_LOOKUP_VIEW | {"vouchers_issued"} and not set(m) & CONTACT_DATA
    url = f"/api/v1/members/{m['id']}"
    for headers in (pos, webshop):
        r = client.get(url, headers=headers)
        assert r.status_code == 200 and set(r.json) >= CARD_LOOKUP_VIEW | {"segment"}
        assert not set(r.json) & CONTACT_DATA
        assert (r.json["name"], r.json["balance"]["points"]) == ("Ann", 0)
        assert "ann@example.com" not in r.text and "+31612345678" not in r.text
    for headers in (admin, api_key("pos", "admin")):
        r = client.get(url, headers=headers)
        assert {k: r.json[k] for k in body} == body
    # an enrolment by admin shows what it stored
    r = enrol(client, admin, email="bob@example.com")
    assert (r.json["email"], r.json["phone"], r.json["marketing_consent"]) == (
        "bob@example.com",
        None,
        False,
    )
    # a till's retry gets the till's view again
    headers = {**pos, "Idempotency-Key": "enrol-cy"}
    first = enrol(client, headers, name="Cy", email="cy@example.com")
    again = enrol(client, headers, name="Cy", email="cy@example.com")
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json
    assert not set(first.json) & CONTACT_DATA


def test_the_member_document_says_contact_data_is_for_admin(client) -> None:
    spec = client.get("/api/v1/openapi.json").json
    schemas = spec["components"]["schemas"]
    member = schemas["Member"]
    assert not set(member["required"]) & CONTACT_DATA
    for field in CONTACT_DATA:
        assert "admin keys only" in member["properties"][field]["description"], field
    post = spec["paths"]["/api/v1/members"]["post"]["responses"]["201"]
    ref = post["content"]["application/json"]["schema"]["$ref"]
    assert "vouchers_issued" in schemas[ref.rsplit("/", 1)[1]]["required"]


def test_enrolment_shows_the_welcome_voucher_it_issued_also_on_a_replay(client, pos, admin) -> None:
    policy = {"kind": "amount", "value": 500, "valid_days": 30, "min_spend": 2000}
    r = client.put("/api/v1/program", json={"welcome_policy": policy}, headers=admin)
    assert r.status_code == 200
    headers = {**pos, "Idempotency-Key": "enrol-ann"}
    r = enrol(client, headers, name="Ann")
    assert r.status_code == 201, r.json
    [issued] = r.json["vouchers_issued"]
    [stored] = client.get(f"/api/v1/members/{r.json['id']}/vouchers", headers=pos).json
    assert issued == {k: stored[k] for k in issued}  # the voucher the member holds
    assert (issued["code"], issued["kind"], issued["discount_type"]) == (
        stored["code"],
        "welcome",
        "amount",
    )
    assert (issued["value"], issued["currency"], issued["min_spend"]) == (500, "EUR", 2000)
    valid_from = datetime.fromisoformat(issued["valid_from"])
    valid_until = datetime.fromisoformat(issued["valid_until"])
    assert valid_until - valid_from == timedelta(days=30)
    assert abs(valid_from - datetime.now(UTC)) < timedelta(minutes=1)  # valid from enrolment

    again = enrol(client, headers, name="Ann")
    assert (again.status_code, again.json) == (201, r.json)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(client.get(f"/api/v1/members/{r.json['id']}/vouchers", headers=pos).json) == 1
    # a member read later is the member, not the enrolment
    assert "vouchers_issued" not in client.get(f"/api/v1/members/{r.json['id']}", headers=pos).json

    client.put("/api/v1/program", json={"welcome_policy": None}, headers=admin)
    assert enrol(client, pos).json["vouchers_issued"] == []
