"""Concurrent redeems of one voucher on PostgreSQL: exactly one wins."""

from __future__ import annotations

import pytest

from tests.factories import run_parallel

pytestmark = pytest.mark.postgres


def test_20_concurrent_redeems_of_one_voucher_exactly_one_wins(app, client, pos, admin) -> None:
    m = client.post("/api/v1/members", json={}, headers=pos).json
    v = client.post(
        f"/api/v1/members/{m['id']}/vouchers",
        json={"kind": "amount", "value": 500, "valid_days": 30, "reason": "complaint"},
        headers=admin,
    ).json
    results = run_parallel(
        app,
        20,
        lambda c, i: c.post(
            f"/api/v1/vouchers/{v['code']}/redeem",
            json={"order_ref": f"order-{i}", "amount": 2000, "currency": "EUR"},
            headers=pos,
        ),
        workers=20,
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [422] * 19, codes
    assert {r.json["code"] for r in results if r.status_code == 422} == {"voucher_used"}
    winner = next(r for r in results if r.status_code == 200).json
    final = client.get(f"/api/v1/vouchers/{v['code']}", headers=pos).json
    assert final["status"] == "used" and final["discount_given"] == winner["discount"] == 500
