"""GET /metrics/cohorts against a hand computation (docs/metrics.md, Cohorts).

Range 2026-01-01..2026-04-30; months are UTC calendar months.

member  purchases (UTC)                                cohort   months with a purchase (k)
A       01-05, 02-10, 04-01                            2026-01  0, 1, 3
B       01-31 23:59:59                                 2026-01  0
C       02-01 00:00:00, 02-20                          2026-02  0            (no later purchase)
F       03-01 00:30 +01:00 = 02-28 23:30 UTC           2026-02  0
E       03-15, 04-15, 05-02 (after the end: ignored)   2026-03  0, 1
D       2025-12-15, 01-10                              2025-12  outside the range

2026-01: size 2 → [2/2, 1/2, 0/2, 1/2] = [1.0, 0.5, 0.0, 0.5]
2026-02: size 2 → [1.0, 0.0, 0.0]
2026-03: size 1 → [1.0, 1.0]
(no one's first purchase is in 2026-04: no row)
"""

from __future__ import annotations

PURCHASES = {
    "A": ["2026-01-05T10:00:00+00:00", "2026-02-10T10:00:00+00:00", "2026-04-01T10:00:00+00:00"],
    "B": ["2026-01-31T23:59:59+00:00"],
    "C": ["2026-02-01T00:00:00+00:00", "2026-02-20T10:00:00+00:00"],
    "F": ["2026-03-01T00:30:00+01:00"],
    "E": ["2026-03-15T10:00:00+00:00", "2026-04-15T10:00:00+00:00", "2026-05-02T10:00:00+00:00"],
    "D": ["2025-12-15T10:00:00+00:00", "2026-01-10T10:00:00+00:00"],
}


def test_cohort_matrix_matches_the_hand_computation(client, pos, api_key) -> None:
    for name, dates in PURCHASES.items():
        m = client.post("/api/v1/members", json={"name": name}, headers=pos).json
        for i, at in enumerate(dates):
            body = {
                "external_id": f"{name}-{i}",
                "member_id": m["id"],
                "amount": 1000,
                "currency": "EUR",
                "occurred_at": at,
            }
            assert client.post("/api/v1/purchases", json=body, headers=pos).status_code == 201
    r = client.get(
        "/api/v1/metrics/cohorts?start=2026-01-01&end=2026-04-30", headers=api_key("reports")
    )
    assert r.status_code == 200, r.json
    assert (r.json["start"], r.json["end"]) == ("2026-01-01", "2026-04-30")
    assert r.json["cohorts"] == [
        {"cohort": "2026-01", "size": 2, "retention": [1.0, 0.5, 0.0, 0.5]},
        {"cohort": "2026-02", "size": 2, "retention": [1.0, 0.0, 0.0]},
        {"cohort": "2026-03", "size": 1, "retention": [1.0, 1.0]},
    ]


def test_no_purchases_no_cohorts_and_bad_input(client, admin, pos) -> None:
    r = client.get("/api/v1/metrics/cohorts?start=2026-01-01&end=2026-12-31", headers=admin)
    assert r.status_code == 200 and r.json["cohorts"] == []
    assert (
        client.get(
            "/api/v1/metrics/cohorts?start=2026-01-01&end=2026-12-31", headers=pos
        ).status_code
        == 403
    )
    r = client.get("/api/v1/metrics/cohorts?start=2026-05-01&end=2026-01-01", headers=admin)
    assert r.status_code == 422 and "end" in r.json["errors"]
