"""GET /metrics/retention against figures computed by hand from docs/metrics.md.

Period P = 2026-03-01..2026-03-31 (D = 31), so P₋ = 2026-01-29..2026-02-28.

member  purchases (amount)                                  in P₋  in P  first ever in P
A       02-10 (1000), 03-05 (2000), 03-20 (3000)              yes   2     no   → retained, repeat
B       02-15 (1500)                                          yes   0     -    → lost
C       03-10 (2500)                                          no    1     yes  → new, one-time
D       2025-12-01 (800), 03-12 (1200)                        no    1     no   → reactivated
E       03-01 00:00:00 (500), 03-31 23:59:59 (700)            no    2     yes  → new, repeat
F       01-28 23:59:59 (900), 04-01 00:00:00 (400)            no    0     -    → outside both
G       03-15 (0: a free purchase counts)                     no    1     yes  → new, one-time

S = {A, B} = 2; E = {A, C, D, E, G} = 5; N = {C, E, G} = 3; retained = 1; lost = 1;
reactivated = 5 - 3 - 1 = 1; purchases in P = 7; revenue = 2000+3000+2500+1200+500+700+0 = 9900;
returns happening in P: 500 (A, 03-25) + 300 (B's February purchase, 03-02) = 800 (C's 100 on
04-02 is outside); repeat = {A, E} = 2; one-time = {C, D, G} = 3.
retention 1/2 = 0.5; churn 0.5; repeat rate 2/5 = 0.4; frequency 7/5 = 1.4;
AOV 9900/7 = 1414.2857… → 1414.29; CLV = (9900/7) × (7/5) ÷ (1/2) = 3960.0.
"""

from __future__ import annotations

import pytest

PURCHASES = {
    "A": [
        ("2026-02-10T12:00:00+00:00", 1000),
        ("2026-03-05T12:00:00+00:00", 2000),
        ("2026-03-20T12:00:00+00:00", 3000),
    ],
    "B": [("2026-02-15T12:00:00+00:00", 1500)],
    "C": [("2026-03-10T12:00:00+01:00", 2500)],
    "D": [("2025-12-01T12:00:00+00:00", 800), ("2026-03-12T12:00:00+00:00", 1200)],
    "E": [("2026-03-01T00:00:00+00:00", 500), ("2026-03-31T23:59:59+00:00", 700)],
    "F": [("2026-01-28T23:59:59+00:00", 900), ("2026-04-01T00:00:00+00:00", 400)],
    "G": [("2026-03-15T12:00:00+00:00", 0)],
}


@pytest.fixture
def history(client, pos) -> dict[str, list[int]]:
    ids: dict[str, list[int]] = {}
    for name, purchases in PURCHASES.items():
        m = client.post("/api/v1/members", json={"name": name}, headers=pos).json
        ids[name] = []
        for i, (at, amount) in enumerate(purchases):
            body = {
                "external_id": f"{name}-{i}",
                "member_id": m["id"],
                "amount": amount,
                "currency": "EUR",
                "occurred_at": at,
                "store_id": "s1" if name == "C" else "s0",
            }
            r = client.post("/api/v1/purchases", json=body, headers=pos)
            assert r.status_code == 201, r.json
            ids[name].append(r.json["id"])
    for purchase_id, amount, at in [
        (ids["A"][1], 500, "2026-03-25T10:00:00+00:00"),
        (ids["B"][0], 300, "2026-03-02T10:00:00+00:00"),
        (ids["C"][0], 100, "2026-04-02T10:00:00+00:00"),
    ]:
        r = client.post(
            f"/api/v1/purchases/{purchase_id}/returns",
            json={"external_id": f"r-{purchase_id}-{amount}", "amount": amount, "occurred_at": at},
            headers=pos,
        )
        assert r.status_code == 201, r.json
    return ids


def test_every_retention_figure_matches_the_hand_computation(client, api_key, history) -> None:
    r = client.get(
        "/api/v1/metrics/retention?start=2026-03-01&end=2026-03-31", headers=api_key("reports")
    )
    assert r.status_code == 200, r.json
    body = r.json
    assert {
        k: body[k]
        for k in (
            "start",
            "end",
            "customers_at_start",
            "active_customers",
            "new_customers",
            "retained_customers",
            "lost_customers",
            "reactivated_customers",
            "purchases",
            "revenue",
            "returned_amount",
            "repeat_customers",
            "one_time_customers",
            "retention_rate",
            "churn_rate",
            "repeat_customer_rate",
            "purchase_frequency",
            "average_order_value",
            "customer_lifetime_value",
        )
    } == {
        "start": "2026-03-01",
        "end": "2026-03-31",
        "customers_at_start": 2,
        "active_customers": 5,
        "new_customers": 3,
        "retained_customers": 1,
        "lost_customers": 1,
        "reactivated_customers": 1,
        "purchases": 7,
        "revenue": 9900,
        "returned_amount": 800,
        "repeat_customers": 2,
        "one_time_customers": 3,
        "retention_rate": 0.5,
        "churn_rate": 0.5,
        "repeat_customer_rate": 0.4,
        "purchase_frequency": 1.4,
        "average_order_value": 1414.29,
        "customer_lifetime_value": 3960.0,
    }
    assert body["definitions"]


def test_an_empty_period_has_zero_counts_and_null_rates(client, admin, history) -> None:
    body = client.get(
        "/api/v1/metrics/retention?start=2027-01-01&end=2027-01-31", headers=admin
    ).json
    assert body["customers_at_start"] == body["active_customers"] == body["purchases"] == 0
    for rate in (
        "retention_rate",
        "churn_rate",
        "repeat_customer_rate",
        "purchase_frequency",
        "average_order_value",
        "customer_lifetime_value",
    ):
        assert body[rate] is None, rate


def test_no_churn_means_no_lifetime_value(client, admin, pos) -> None:
    m = client.post("/api/v1/members", json={}, headers=pos).json
    for day in ("2026-05-01", "2026-05-02"):
        client.post(
            "/api/v1/purchases",
            json={
                "external_id": day,
                "member_id": m["id"],
                "amount": 1000,
                "currency": "EUR",
                "occurred_at": f"{day}T09:00:00+00:00",
            },
            headers=pos,
        )
    body = client.get(
        "/api/v1/metrics/retention?start=2026-05-02&end=2026-05-02", headers=admin
    ).json
    assert (body["customers_at_start"], body["retained_customers"], body["churn_rate"]) == (
        1,
        1,
        0.0,
    )
    assert body["retention_rate"] == 1.0 and body["customer_lifetime_value"] is None


def test_a_store_sees_its_own_purchases(client, admin, history) -> None:
    body = client.get(
        "/api/v1/metrics/retention?start=2026-03-01&end=2026-03-31&store_id=s1", headers=admin
    ).json
    assert (
        body["active_customers"],
        body["new_customers"],
        body["purchases"],
        body["revenue"],
    ) == (1, 1, 1, 2500)
    assert body["returned_amount"] == 0  # C's return happened in April


def test_bad_periods_and_scopes(client, admin, pos) -> None:
    assert (
        client.get(
            "/api/v1/metrics/retention?start=2026-03-01&end=2026-03-31", headers=pos
        ).status_code
        == 403
    )
    for query, field in [
        ("start=2026-03-31&end=2026-03-01", "end"),
        ("start=2026-3-1x&end=2026-03-31", "start"),
        ("end=2026-03-31", "start"),
    ]:
        r = client.get(f"/api/v1/metrics/retention?{query}", headers=admin)
        assert r.status_code == 422 and field in r.json["errors"], (query, r.json)
