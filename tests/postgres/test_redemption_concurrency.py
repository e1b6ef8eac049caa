"""Redemptions under real parallel connections on PostgreSQL."""

from __future__ import annotations

import pytest

from tests.factories import run_parallel, verify_ledger

pytestmark = pytest.mark.postgres


def test_20_concurrent_redemptions_with_points_for_one_reserve_exactly_one(
    app, client, runner, pos, admin
) -> None:
    m = client.post("/api/v1/members", json={}, headers=pos).json
    client.post(
        f"/api/v1/members/{m['id']}/adjustments",
        json={"points": 100, "reason": "seed"},
        headers=admin,
    )
    r = client.post(
        "/api/v1/rewards",
        json={"name": "Cake", "kind": "free_item", "sku": "CAKE", "points_cost": 100},
        headers=admin,
    ).json
    results = run_parallel(
        app,
        20,
        lambda c, i: c.post(
            "/api/v1/redemptions",
            json={"card_number": m["card_number"], "reward_id": r["id"]},
            headers=pos,
        ),
        workers=20,
    )
    codes = sorted(x.status_code for x in results)
    assert codes == [201] + [422] * 19, codes
    assert {x.json["code"] for x in results if x.status_code == 422} == {"insufficient_points"}
    assert client.get(f"/api/v1/members/{m['id']}", headers=pos).json["balance"] == {
        "points": 100,
        "held": 100,
        "pending": 0,
        "available": 0,
    }
    verify_ledger(runner)


def test_a_reward_with_stock_5_and_30_members_at_once_goes_exactly_5_times(
    app, client, runner, pos, admin
) -> None:
    r = client.post(
        "/api/v1/rewards",
        json={"name": "Mug", "kind": "free_item", "sku": "MUG", "points_cost": 10, "stock": 5},
        headers=admin,
    ).json
    ids = []
    for _ in range(30):
        m = client.post("/api/v1/members", json={}, headers=pos).json
        client.post(
            f"/api/v1/members/{m['id']}/adjustments",
            json={"points": 10, "reason": "seed"},
            headers=admin,
        )
        ids.append(m["id"])
    results = run_parallel(
        app,
        30,
        lambda c, i: c.post(
            "/api/v1/redemptions",
            json={"member_id": ids[i], "reward_id": r["id"], "instant": True},
            headers=pos,
        ),
        workers=30,
    )
    codes = sorted(x.status_code for x in results)
    assert codes == [201] * 5 + [422] * 25, codes
    assert {x.json["code"] for x in results if x.status_code == 422} == {"out_of_stock"}
    assert client.get(f"/api/v1/rewards/{r['id']}", headers=pos).json["stock"] == 0
    verify_ledger(runner)


def test_concurrent_confirm_and_cancel_of_one_reservation_settle_it_once(
    app, client, runner, pos, admin
) -> None:
    m = client.post("/api/v1/members", json={}, headers=pos).json
    client.post(
        f"/api/v1/members/{m['id']}/adjustments",
        json={"points": 100, "reason": "seed"},
        headers=admin,
    )
    r = client.post(
        "/api/v1/rewards",
        json={"name": "Tea", "kind": "free_item", "sku": "TEA", "points_cost": 60},
        headers=admin,
    ).json
    red = client.post(
        "/api/v1/redemptions", json={"member_id": m["id"], "reward_id": r["id"]}, headers=pos
    ).json
    action = ["confirm", "cancel"]
    results = run_parallel(
        app,
        20,
        lambda c, i: c.post(f"/api/v1/redemptions/{red['id']}/{action[i % 2]}", headers=pos),
        workers=20,
    )
    final = client.get(f"/api/v1/redemptions/{red['id']}", headers=pos).json["status"]
    bal = client.get(f"/api/v1/members/{m['id']}", headers=pos).json["balance"]
    if final == "redeemed":
        assert bal == {"points": 40, "held": 0, "pending": 0, "available": 40}
        assert all(x.status_code in (200, 409) for x in results)
    else:
        assert final == "released" and bal == {
            "points": 100,
            "held": 0,
            "pending": 0,
            "available": 100,
        }
    verify_ledger(runner)


def test_a_per_member_limit_holds_under_concurrent_reservations(
    app, client, runner, pos, admin
) -> None:
    m = client.post("/api/v1/members", json={}, headers=pos).json
    client.post(
        f"/api/v1/members/{m['id']}/adjustments",
        json={"points": 1000, "reason": "seed"},
        headers=admin,
    )
    r = client.post(
        "/api/v1/rewards",
        json={
            "name": "Once",
            "kind": "free_item",
            "sku": "ONCE",
            "points_cost": 10,
            "per_member_limit": 1,
        },
        headers=admin,
    ).json
    results = run_parallel(
        app,
        10,
        lambda c, i: c.post(
            "/api/v1/redemptions", json={"member_id": m["id"], "reward_id": r["id"]}, headers=pos
        ),
        workers=10,
    )
    codes = sorted(x.status_code for x in results)
    assert codes == [201] + [422] * 9, codes
    assert {x.json["code"] for x in results if x.status_code == 422} == {"reward_limit_reached"}
    assert client.get(f"/api/v1/members/{m['id']}", headers=pos).json["balance"]["held"] == 10
    verify_ledger(runner)
