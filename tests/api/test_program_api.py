"""GET/PUT /program."""

from __future__ import annotations


def test_every_scope_reads_the_programme(client, api_key) -> None:
    for scope in ("pos", "webshop", "admin", "reports"):
        r = client.get("/api/v1/program", headers=api_key(scope))
        assert r.status_code == 200
        assert r.json["currency"] == "EUR" and r.json["points_per_unit"] == 1


def test_admin_changes_the_programme_and_the_exponent_follows(client, admin) -> None:
    r = client.put(
        "/api/v1/program",
        json={
            "currency": "bhd",
            "points_per_unit": 3,
            "rounding": "half_up",
            "reservation_minutes": 30,
        },
        headers=admin,
    )
    assert r.status_code == 200, r.json
    assert (r.json["currency"], r.json["currency_exponent"], r.json["points_per_unit"]) == (
        "BHD",
        3,
        3,
    )
    assert r.json["rounding"] == "half_up" and r.json["reservation_minutes"] == 30
    assert client.get("/api/v1/program", headers=admin).json == r.json


def test_bad_programme_values_are_422(client, admin) -> None:
    for body, field in [
        ({"currency": "XXZ"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"rounding": "banker"}, "rounding"),
        ({"reservation_minutes": 0}, "reservation_minutes"),
        ({"points_per_unit": -1}, "points_per_unit"),
        ({"points_per_unit": 1.5}, "points_per_unit"),
        ({"tiers_x": []}, "tiers_x"),
    ]:
        r = client.put("/api/v1/program", json=body, headers=admin)
        assert r.status_code == 422 and field in r.json["errors"], (body, r.json)


def test_the_currency_is_locked_once_money_is_recorded_in_it(client, admin, pos) -> None:
    assert client.put("/api/v1/program", json={"currency": "GBP"}, headers=admin).status_code == 200
    m = client.post("/api/v1/members", json={}, headers=pos).json
    sale = {"external_id": "s", "member_id": m["id"], "amount": 100, "currency": "GBP"}
    assert client.post("/api/v1/purchases", json=sale, headers=pos).status_code == 201
    r = client.put("/api/v1/program", json={"currency": "EUR"}, headers=admin)
    assert (r.status_code, r.json["code"]) == (409, "currency_locked")
    assert (
        client.put(
            "/api/v1/program", json={"currency": "gbp", "points_per_unit": 2}, headers=admin
        ).status_code
        == 200
    )


GOLD_TABLE = [
    {"name": "Silver", "qualifying_spend": 0, "multiplier": 1},
    {"name": "Gold", "qualifying_spend": 50_000, "multiplier": 1.5, "benefits": ["free delivery"]},
    {"name": "Platinum", "qualifying_spend": 200_000, "multiplier": 2.25, "benefits": []},
]


def test_put_takes_back_what_get_returns_with_one_field_changed(client, admin) -> None:
    url = "/api/v1/program"
    current = client.get(url, headers=admin).json
    r = client.put(url, json=current, headers=admin)  # nothing changed: accepted as it is
    assert (r.status_code, r.json) == (200, current)
    policy = {"kind": "percent", "value": 10, "valid_days": 30, "min_spend": 0}
    for field, value in [
        ("name", "Club"),
        ("points_per_unit", 3),
        ("rounding", "up"),
        ("points_expire_after_days", 365),
        ("reservation_minutes", 30),
        ("welcome_policy", policy),
        ("come_back_policy", {**policy, "min_purchase": 500, "holdout_percent": 10}),
        ("tiers", [{**t, "benefits": t.get("benefits", [])} for t in GOLD_TABLE]),
        ("welcome_policy", None),
    ]:
        body = {**client.get(url, headers=admin).json, field: value}
        r = client.put(url, json=body, headers=admin)
        assert r.status_code == 200, (field, r.json)
        days = r.json["points_expire_after_days"]
        expected = {**body, "expiry_policy": None if days is None else {"days": days}}
        assert r.json == expected, field  # expiry_policy follows points_expire_after_days
        assert client.get(url, headers=admin).json == expected, field


def test_expiry_policy_is_the_other_spelling_of_points_expire_after_days(client, admin) -> None:
    url = "/api/v1/program"

    def expiry() -> tuple:
        got = client.get(url, headers=admin).json
        return got["points_expire_after_days"], got["expiry_policy"]

    assert expiry() == (None, None)
    assert client.put(url, json={"expiry_policy": {"days": 30}}, headers=admin).status_code == 200
    assert expiry() == (30, {"days": 30})
    # GET gives both: the one changed wins, whichever it is
    for field, value, want in [
        ("expiry_policy", {"days": 90}, 90),
        ("points_expire_after_days", 120, 120),
        ("expiry_policy", None, None),
        ("points_expire_after_days", 7, 7),
    ]:
        body = {**client.get(url, headers=admin).json, field: value}
        r = client.put(url, json=body, headers=admin)
        assert r.status_code == 200, (field, r.json)
        assert expiry() == (want, None if want is None else {"days": want}), field
    both = {"expiry_policy": {"days": 10}, "points_expire_after_days": 20}  # both changed
    r = client.put(url, json=both, headers=admin)
    assert (r.status_code, r.json["code"]) == (422, "validation_error"), r.json
    assert list(r.json["errors"]) == ["expiry_policy"], r.json
    assert expiry() == (7, {"days": 7})  # nothing written
    alike = {"expiry_policy": {"days": 10}, "points_expire_after_days": 10}
    assert client.put(url, json=alike, headers=admin).status_code == 200
    assert expiry() == (10, {"days": 10})
    for bad in ({"days": 0}, {"days": "30"}, {"days": 36501}, {}, {"days": 5, "weeks": 1}):
        r = client.put(url, json={"expiry_policy": bad}, headers=admin)
        assert r.status_code == 422, (bad, r.json)
        assert all(k.startswith("expiry_policy") for k in r.json["errors"]), (bad, r.json)


def test_the_currency_exponent_is_read_only(client, admin) -> None:
    url = "/api/v1/program"
    r = client.put(url, json={"currency_exponent": 3}, headers=admin)
    assert (r.status_code, r.json["code"]) == (422, "validation_error")
    assert list(r.json["errors"]) == ["currency_exponent"]
    assert "read-only" in r.json["detail"] and "EUR has 2" in r.json["detail"]
    assert client.get(url, headers=admin).json["currency_exponent"] == 2
    # GET's body with only the currency changed: the exponent sent is the old one, and follows
    body = {**client.get(url, headers=admin).json, "currency": "JPY"}
    r = client.put(url, json=body, headers=admin)
    assert r.status_code == 200, r.json
    assert (r.json["currency"], r.json["currency_exponent"]) == ("JPY", 0)
    assert client.put(url, json={"currency_exponent": 0}, headers=admin).status_code == 200
    r = client.put(url, json={"currency_exponent": 2}, headers=admin)
    assert (r.status_code, list(r.json["errors"])) == (422, ["currency_exponent"])
    r = client.put(url, json={"currency_exponent": "0"}, headers=admin)
    assert (r.status_code, list(r.json["errors"])) == (422, ["currency_exponent"])


def test_tiers_are_stored_validated_and_returned(client, admin, api_key) -> None:
    url = "/api/v1/program"
    r = client.put(url, json={"tiers": GOLD_TABLE}, headers=admin)
    assert r.status_code == 200, r.json
    stored = [
        {"name": "Silver", "qualifying_spend": 0, "multiplier": 1, "benefits": []},
        {
            "name": "Gold",
            "qualifying_spend": 50_000,
            "multiplier": 1.5,
            "benefits": ["free delivery"],
        },
        {"name": "Platinum", "qualifying_spend": 200_000, "multiplier": 2.25, "benefits": []},
    ]
    assert r.json["tiers"] == stored
    assert client.get(url, headers=api_key("pos")).json["tiers"] == stored

    silver, gold = GOLD_TABLE[0], GOLD_TABLE[1]
    for tiers, field in [
        ([silver, {**gold, "name": " silver "}], "tiers.1.name"),
        ([gold, silver], "tiers.1.qualifying_spend"),
        ([silver, {**gold, "qualifying_spend": 0}], "tiers.1.qualifying_spend"),
        ([{**silver, "name": "  "}], "tiers.0.name"),
        ([{**silver, "name": "x" * 101}], "tiers.0.name"),
        ([{**silver, "qualifying_spend": -1}], "tiers.0.qualifying_spend"),
        ([{**silver, "qualifying_spend": "100"}], "tiers.0.qualifying_spend"),
        ([{**silver, "qualifying_spend": 1.5}], "tiers.0.qualifying_spend"),
        ([{**silver, "multiplier": 0}], "tiers.0.multiplier"),
        ([{**silver, "multiplier": -1}], "tiers.0.multiplier"),
        ([{**silver, "multiplier": "2"}], "tiers.0.multiplier"),
        ([{**silver, "multiplier": True}], "tiers.0.multiplier"),
        ([{**silver, "multiplier": 1.234}], "tiers.0.multiplier"),
        ([{**silver, "multiplier": 101}], "tiers.0.multiplier"),
        ([{"name": "Silver", "qualifying_spend": 0}], "tiers.0.multiplier"),
        ([{**silver, "colour": "grey"}], "tiers.0.colour"),
        ([{**silver, "benefits": "free coffee"}], "tiers.0.benefits"),
        ([{**silver, "qualifying_spend": i} for i in range(21)], "tiers"),
        ({"name": "Silver"}, "tiers"),
    ]:
        r = client.put(url, json={"tiers": tiers}, headers=admin)
        assert (r.status_code, r.json["code"]) == (422, "validation_error"), (tiers, r.json)
        assert field in r.json["errors"], (field, r.json["errors"])
    assert client.get(url, headers=admin).json["tiers"] == stored  # nothing refused was kept

    r = client.put(url, json={"tiers": []}, headers=admin)
    assert r.status_code == 200 and r.json["tiers"] == []
    assert client.put(url, json={"tiers": GOLD_TABLE}, headers=api_key("pos")).status_code == 403
