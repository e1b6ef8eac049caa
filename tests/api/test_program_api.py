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
