"""/earning-rules: the rules' life (versions, soft delete), and what purchases, quotes, returns
and imports earn by them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from loyalty.extensions import db
from loyalty.models import EarningRule

RULES = "/api/v1/earning-rules"
LINES = [
    {"sku": "COFFEE", "category": "drinks", "quantity": 2, "unit_price": 300},
    {"sku": "BREAD", "category": "bakery", "quantity": 1, "unit_price": 400},
]


@pytest.fixture
def member(client, pos) -> dict:
    return client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json


def add_rule(client, admin, **fields) -> dict:
    body = {"name": "Double", "kind": "multiplier", "value": 2, **fields}
    r = client.post(RULES, json=body, headers=admin)
    assert r.status_code == 201, r.json
    return r.json


def buy(client, pos, member: dict, external_id: str, amount: int = 1000, **extra) -> dict:
    body = {"external_id": external_id, "member_id": member["id"], "amount": amount}
    r = client.post("/api/v1/purchases", json={**body, "currency": "EUR", **extra}, headers=pos)
    assert r.status_code == 201, r.json
    return r.json


def test_admin_creates_reads_lists_changes_and_deletes_a_rule(client, admin) -> None:
    rule = add_rule(
        client,
        admin,
        value=1.5,
        conditions={"weekdays": [2, 2, 6], "categories": ["drinks"], "skus": []},
        max_points_per_purchase=100,
        budget=1000,
        stackable=False,
    )
    assert (rule["value"], rule["version"], rule["budget_left"]) == (1.5, 1, 1000)
    assert rule["conditions"] == {"weekdays": [2, 6], "categories": ["drinks"]}
    assert (rule["priority"], rule["active"], rule["stackable"]) == (0, True, False)
    assert client.get(f"{RULES}/{rule['id']}", headers=admin).json == rule
    r = client.patch(f"{RULES}/{rule['id']}", json={"value": 3, "name": "Triple"}, headers=admin)
    assert r.status_code == 200 and (r.json["value"], r.json["version"]) == (3, 2)
    listed = client.get(RULES, headers=admin)
    assert [x["name"] for x in listed.json] == ["Triple"]
    assert client.delete(f"{RULES}/{rule['id']}", headers=admin).status_code == 204
    assert client.get(f"{RULES}/{rule['id']}", headers=admin).status_code == 404
    assert client.get(RULES, headers=admin).json == []
    versions = client.get(f"{RULES}/{rule['id']}/versions", headers=admin).json
    assert [
        (v["version"], v["definition"]["name"], v["definition"]["deleted"]) for v in versions
    ] == [
        (1, "Double", False),
        (2, "Triple", False),
        (3, "Triple", True),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": 1}, "value"),  # a multiplier of 1 adds nothing
        ({"value": 1.255}, "value"),
        ({"value": 101}, "value"),
        ({"kind": "bonus_points", "value": 2.5}, "value"),
        ({"kind": "percent"}, "kind"),
        ({"conditions": {"weekdays": [8]}}, "conditions"),
        ({"conditions": {"segments": ["vip"]}}, "conditions"),
        ({"conditions": {"colour": "red"}}, "conditions"),
        (
            {"conditions": {"starts_at": "2026-12-02T00:00:00", "ends_at": "2026-12-01T00:00:00"}},
            "conditions.ends_at",
        ),
        ({"budget": 0}, "budget"),
        ({"max_points_per_purchase": -1}, "max_points_per_purchase"),
        ({"value": "2"}, "value"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_field(client, admin, body, field) -> None:
    r = client.post(
        RULES, json={"name": "R", "kind": "multiplier", "value": 2, **body}, headers=admin
    )
    assert r.status_code == 422 and r.json["code"] == "validation_error", r.json
    assert any(key == field or key.startswith(f"{field}.") for key in r.json["errors"]), r.json


def test_only_admin_keys_reach_the_rules(client, pos, admin) -> None:
    assert client.get(RULES, headers=pos).status_code == 403
    assert client.post(RULES, json={}, headers=pos).status_code == 403
    assert client.patch(f"{RULES}/999", json={}, headers=admin).status_code == 404


def test_a_purchase_earns_by_the_rules_and_explains_it(client, pos, admin, member) -> None:
    double = add_rule(client, admin, conditions={"categories": ["drinks"]})
    bonus = add_rule(client, admin, name="Bread bonus", kind="bonus_points", value=50, priority=5)
    p = buy(client, pos, member, "p1", lines=LINES)
    assert p["breakdown"] == [
        {"rule_id": None, "name": "base", "points": 10},
        {"rule_id": bonus["id"], "rule_version": 1, "name": "Bread bonus", "points": 50},
        {"rule_id": double["id"], "rule_version": 1, "name": "Double", "points": 6},
    ]
    assert p["points_earned"] == 66 and p["balance"]["points"] == 66
    again = client.post(
        "/api/v1/purchases",
        json={
            "external_id": "p1",
            "member_id": member["id"],
            "amount": 1000,
            "currency": "EUR",
            "lines": LINES,
        },
        headers=pos,
    )
    assert again.status_code == 200 and again.json["breakdown"] == p["breakdown"]
    entries = client.get(f"/api/v1/purchases/{p['id']}", headers=pos).json["ledger_entries"]
    assert sorted((e["kind"], e["points"]) for e in entries) == [("bonus", 56), ("earn", 10)]


def test_the_quote_gives_the_breakdown_the_purchase_then_records(
    client, pos, admin, member
) -> None:
    add_rule(client, admin, conditions={"skus": ["BREAD"]}, value=4)
    add_rule(
        client,
        admin,
        name="Big basket",
        kind="bonus_points",
        value=25,
        conditions={"min_spend": 1000},
    )
    body = {"member_id": member["id"], "amount": 1000, "currency": "EUR", "lines": LINES}
    quote = client.post("/api/v1/checkout/quote", json=body, headers=pos).json
    p = buy(client, pos, member, "p1", lines=LINES)
    assert (
        quote["breakdown"] == p["breakdown"] and quote["points_earned"] == p["points_earned"] == 47
    )


def test_editing_or_deleting_a_rule_never_changes_a_past_purchase(
    client, pos, admin, member
) -> None:
    rule = add_rule(client, admin, value=3)
    p = buy(client, pos, member, "p1")
    client.patch(f"{RULES}/{rule['id']}", json={"value": 5, "name": "Five"}, headers=admin)
    later = buy(client, pos, member, "p2")
    client.delete(f"{RULES}/{rule['id']}", headers=admin)
    last = buy(client, pos, member, "p3")
    first = client.get(f"/api/v1/purchases/{p['id']}", headers=pos).json
    assert first["points_earned"] == 30 and first["breakdown"] == p["breakdown"]
    assert first["breakdown"][1] == {
        "rule_id": rule["id"],
        "rule_version": 1,
        "name": "Double",
        "points": 20,
    }
    assert later["breakdown"][1] == {
        "rule_id": rule["id"],
        "rule_version": 2,
        "name": "Five",
        "points": 40,
    }
    assert last["breakdown"] == [{"rule_id": None, "name": "base", "points": 10}]
    assert (
        client.get(f"/api/v1/members/{member['id']}", headers=pos).json["balance"]["points"] == 90
    )


def test_an_inactive_rule_earns_nothing_until_switched_on(client, pos, admin, member) -> None:
    rule = add_rule(client, admin, active=False)
    assert buy(client, pos, member, "p1")["points_earned"] == 10
    client.patch(f"{RULES}/{rule['id']}", json={"active": True}, headers=admin)
    assert buy(client, pos, member, "p2")["points_earned"] == 20


def test_a_budget_stops_exactly_and_is_not_lowered_below_what_was_given(
    client, pos, admin, member
) -> None:
    rule = add_rule(client, admin, kind="bonus_points", value=40, budget=100)
    earned = [buy(client, pos, member, f"p{i}")["points_earned"] for i in range(4)]
    assert earned == [50, 50, 30, 10]  # 40, 40, then the 20 left, then nothing
    assert client.get(f"{RULES}/{rule['id']}", headers=admin).json["budget_left"] == 0
    r = client.patch(f"{RULES}/{rule['id']}", json={"budget": 50}, headers=admin)
    assert r.status_code == 422 and "budget" in r.json["errors"]
    r = client.patch(f"{RULES}/{rule['id']}", json={"budget": 130}, headers=admin)
    assert r.status_code == 200 and r.json["budget_left"] == 30
    assert buy(client, pos, member, "p9")["points_earned"] == 40


def test_a_returned_bonus_item_takes_back_its_bonus(client, pos, admin, member) -> None:
    add_rule(
        client,
        admin,
        name="Bread bonus",
        kind="bonus_points",
        value=50,
        conditions={"skus": ["BREAD"]},
    )
    p = buy(client, pos, member, "p1", lines=LINES)  # 10 base (6 + 4) + 50 on BREAD
    url = f"/api/v1/purchases/{p['id']}/returns"
    body = {"external_id": "r1", "amount": 400, "lines": [{"sku": "BREAD", "quantity": 1}]}
    r = client.post(url, json=body, headers=pos)
    assert r.status_code == 201 and r.json["points_reversed"] == 54
    body = {"external_id": "r2", "amount": 300, "lines": [{"sku": "COFFEE", "quantity": 1}]}
    assert client.post(url, json=body, headers=pos).json["points_reversed"] == 3
    body = {"external_id": "r3", "amount": 300}  # without lines: pro rata, never above earned
    assert client.post(url, json=body, headers=pos).json["points_reversed"] == 3
    detail = client.get(f"/api/v1/purchases/{p['id']}", headers=pos).json
    assert (detail["points_earned"], detail["points_reversed"]) == (60, 60)


def test_the_programme_time_zone_is_set_validated_and_used(client, pos, admin, member) -> None:
    assert client.get("/api/v1/program", headers=admin).json["timezone"] == "UTC"
    r = client.put("/api/v1/program", json={"timezone": "Mars/Olympus"}, headers=admin)
    assert r.status_code == 422 and "timezone" in r.json["errors"]
    r = client.put("/api/v1/program", json={"timezone": "Europe/Amsterdam"}, headers=admin)
    assert r.status_code == 200 and r.json["timezone"] == "Europe/Amsterdam"
    add_rule(
        client,
        admin,
        name="November",
        conditions={"starts_at": "2026-11-01T00:00:00", "ends_at": "2026-12-01T00:00:00"},
    )
    before = datetime(2026, 10, 31, 22, 59, tzinfo=UTC).isoformat()  # 23:59 in Amsterdam
    after = datetime(2026, 10, 31, 23, 0, tzinfo=UTC).isoformat()  # midnight there
    assert buy(client, pos, member, "p1", occurred_at=before)["points_earned"] == 10
    assert buy(client, pos, member, "p2", occurred_at=after)["points_earned"] == 20


def test_the_cache_follows_a_change_made_elsewhere(app, client, pos, admin, member) -> None:
    """Another process changes a rule: the purchase reads the new rules_version and reloads."""
    rule = add_rule(client, admin, value=2)
    assert buy(client, pos, member, "p1")["points_earned"] == 20
    client.patch(f"{RULES}/{rule['id']}", json={"value": 4}, headers=admin)
    assert buy(client, pos, member, "p2")["points_earned"] == 40
    with app.app_context():
        stored = db.session.scalars(select(EarningRule)).one()
        assert (stored.version, stored.value) == (2, "4")


def test_an_import_earns_by_the_rules_a_row_can_meet(app, runner, client, admin, tmp_path) -> None:
    add_rule(client, admin, name="Store S1", conditions={"store_ids": ["S1"]}, value=3)
    add_rule(client, admin, name="Coffee", conditions={"skus": ["COFFEE"]}, value=5)  # no lines
    add_rule(client, admin, name="Budgeted", kind="bonus_points", value=7, budget=100)
    path = tmp_path / "history.csv"
    path.write_text(
        "customer_ref,external_id,occurred_at,amount,store_id\n"
        "c1,x1,2026-01-01,10,S1\nc1,x2,2026-01-02,10,S2\n",
        encoding="utf-8",
    )
    out = runner.invoke(args=["loyalty", "import-purchases", str(path)])
    assert out.exit_code == 0, out.output
    with app.app_context():
        from loyalty.models import Purchase

        earned = dict(
            db.session.execute(select(Purchase.external_id, Purchase.points_earned)).all()
        )
    assert earned == {"x1": 30, "x2": 10}


def test_a_segment_rule_reads_the_members_segment_before_the_purchase(
    client, pos, admin, member
) -> None:
    add_rule(
        client,
        admin,
        name="Welcome back new",
        kind="bonus_points",
        value=5,
        conditions={"segments": ["new"]},
    )
    first = buy(client, pos, member, "p1")  # no purchase before it: no segment yet
    second = buy(client, pos, member, "p2")  # one recent purchase: a new customer
    assert (first["points_earned"], second["points_earned"]) == (10, 15)
    assert client.get(f"/api/v1/members/{member['id']}", headers=admin).json["segment"] == "new"


def test_a_tier_rule_and_the_tier_multiplier_use_the_tier_held_before_the_purchase(
    client, pos, admin, member
) -> None:
    tiers = [{"name": "Gold", "qualifying_spend": 1000, "multiplier": 1.5}]
    assert client.put("/api/v1/program", json={"tiers": tiers}, headers=admin).status_code == 200
    rule = add_rule(
        client,
        admin,
        name="Gold bonus",
        kind="bonus_points",
        value=4,
        conditions={"tiers": ["gold"]},
    )
    first = buy(client, pos, member, "p1")  # reaches Gold, earns as before it
    second = buy(client, pos, member, "p2")
    assert first["breakdown"] == [{"rule_id": None, "name": "base", "points": 10}]
    assert second["breakdown"] == [
        {"rule_id": None, "name": "base", "points": 10},
        {"rule_id": None, "name": "tier Gold", "points": 5},
        {"rule_id": rule["id"], "rule_version": 1, "name": "Gold bonus", "points": 4},
    ]
    assert second["points_earned"] == 19
