"""The demo programme's earning rules, as the README's tour shows them."""

from __future__ import annotations


def test_the_demo_earns_by_its_two_rules_as_the_tour_shows(runner, client) -> None:
    out = runner.invoke(args=["loyalty", "seed-demo"])
    assert out.exit_code == 0, out.output
    admin = {"Authorization": f"Bearer {out.output.splitlines()[-1].split()[-1]}"}
    pos_key = next(x for x in out.output.splitlines() if x.startswith("demo-pos")).split()[-1]
    pos = {"Authorization": f"Bearer {pos_key}"}
    rules = client.get("/api/v1/earning-rules", headers=admin).json
    assert sorted(r["name"] for r in rules) == ["Double points on coffee", "Weekend bonus"]
    assert client.get("/api/v1/program", headers=admin).json["timezone"] == "Europe/Amsterdam"
    ann = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    assert ann["id"] == 4
    sale = {
        "external_id": "till-7-ann",
        "member_id": 4,
        "amount": 2599,
        "currency": "EUR",
        "lines": [
            {"sku": "COFFEE", "category": "coffee", "quantity": 2, "unit_price": 350},
            {"sku": "CAKE", "category": "bakery", "quantity": 1, "unit_price": 1899},
        ],
    }
    p = client.post("/api/v1/purchases", json=sale, headers=pos).json
    coffee = next(r["id"] for r in rules if r["name"] == "Double points on coffee")
    assert p["points_earned"] == 32 and p["breakdown"] == [
        {"rule_id": None, "name": "base", "points": 25},
        {"rule_id": coffee, "rule_version": 1, "name": "Double points on coffee", "points": 7},
    ]
    back = {
        "external_id": "till-7-ann-r1",
        "amount": 350,
        "lines": [{"sku": "COFFEE", "quantity": 1}],
    }
    r = client.post(f"/api/v1/purchases/{p['id']}/returns", json=back, headers=pos)
    assert r.status_code == 201 and r.json["points_reversed"] == 7
