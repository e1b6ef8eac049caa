"""The members-and-cards contract of api.md, at the HTTP edge."""

from __future__ import annotations

import json

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
    assert m["balance"] == {"points": 0, "held": 0, "available": 0}
    assert set(m) >= {
        "id",
        "name",
        "email",
        "phone",
        "marketing_consent",
        "external_ref",
        "card_number",
        "cards",
        "balance",
        "tier",
        "created_at",
    }
    assert m["created_at"].endswith("+00:00")

    r = client.get(f"/api/v1/cards/{m['card_number']}", headers=pos)
    assert r.status_code == 200
    assert r.json == {
        "card_number": m["card_number"],
        "status": "active",
        "member": {"id": m["id"], "name": "Ann", "tier": None},
        "balance": {"points": 0, "held": 0, "available": 0},
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
    assert client.get(f"/api/v1/members/{m['id']}", headers=pos).json == {**m, "segment": None}
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


def test_delete_erases_personal_data_but_keeps_the_member_and_card(client, pos, admin) -> None:
    m = enrol(client, pos, name="Ann", email="ann@example.com", phone="+31612345678").json
    url = f"/api/v1/members/{m['id']}"
    assert client.delete(url, headers=pos).status_code == 403
    r = client.delete(url, headers=admin)
    assert r.status_code == 204 and r.data == b""
    after = client.get(url, headers=admin).json
    assert (after["name"], after["email"], after["phone"]) == (None, None, None)
    assert after["erased_at"] is not None and after["card_number"] == m["card_number"]
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


def test_booleans_are_json_booleans_only(client, pos) -> None:
    r = enrol(client, pos, marketing_consent=0)
    assert r.status_code == 422 and list(r.json["errors"]) == ["marketing_consent"]
    assert enrol(client, pos, marketing_consent=True).json["marketing_consent"] is True


def test_an_anonymous_card_needs_no_body(client, pos) -> None:
    r = client.post("/api/v1/members", headers=pos)
    assert r.status_code == 201 and r.json["name"] is None and r.json["card_number"]
