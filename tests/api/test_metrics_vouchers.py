"""GET /metrics/vouchers against a hand computation, and the z-test against a textbook example.

Period P = 2026-03-01..2026-03-31. Win-back campaign wb1 (with a holdout), issued 2026-03-10 00:00,
valid until 2026-04-10 00:00:
  treated T1 (voucher used; buys 03-12 12:00: 2.5 days), T2 (buys 03-20: 10 days), T3 (buys
  04-20: 41 days, after the validity), T4 (bought 03-09, before the issue: never after);
  holdout H1 (buys 03-15), H2 (buys 04-10 00:00: the end of the validity is excluded), H3, H4.
Win-back campaign wb0 (no holdout), issued 03-05 to T2 (next purchase 03-20: 15 days).
A come-back voucher issued 03-20 to C (no later purchase); a goodwill voucher of 02-28 23:59:59
and a come-back holdout of 04-01 lie outside P.

win_back: issued 5, redeemed 1 (0.2), came back 4, median of 2.5, 10, 15, 41 = 12.5 days;
treated 2 of 4 (0.5), holdout 1 of 4 (0.25), uplift 0.25;
SE = √(0.5·0.5/4 + 0.25·0.75/4) = √0.109375 = 0.330719 → CI 0.25 ± 1.959964 × 0.330719 =
[−0.3982, 0.8982]; pooled p = 3/8, SE₀ = √(0.375·0.625·(1/4 + 1/4)) = 0.342327,
z = 0.25 / 0.342327 = 0.7303, two-sided p = 0.4652.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from loyalty.domain.metrics import two_proportion_test
from loyalty.extensions import db
from loyalty.models import Voucher, VoucherHoldout

_codes = itertools.count(1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def voucher(member_id: int, kind: str, created: str, campaign: str, status: str = "active"):
    at = utc(created)
    return Voucher(
        code=f"TESTV{next(_codes):05d}",
        member_id=member_id,
        kind=kind,
        discount_type="amount",
        value=500,
        currency="EUR",
        min_spend=0,
        valid_from=at,
        valid_until=at + timedelta(days=31),
        status=status,
        campaign=campaign,
        created_at=at,
    )


def holdout(member_id: int, kind: str, created: str, campaign: str) -> VoucherHoldout:
    at = utc(created)
    return VoucherHoldout(
        member_id=member_id,
        kind=kind,
        campaign=campaign,
        valid_from=at,
        valid_until=at + timedelta(days=31),
        holdout_percent=50,
        created_at=at,
    )


PURCHASES = {
    "T1": ["2026-03-12T12:00:00"],
    "T2": ["2026-03-20T00:00:00"],
    "T3": ["2026-04-20T00:00:00"],
    "T4": ["2026-03-09T00:00:00"],
    "H1": ["2026-03-15T00:00:00"],
    "H2": ["2026-04-10T00:00:00"],
    "H3": [],
    "H4": ["2026-01-01T00:00:00"],
    "C": ["2026-03-20T00:00:00"],
}


def test_voucher_metrics_match_the_hand_computation(app, client, pos, api_key) -> None:
    ids = {}
    for name, dates in PURCHASES.items():
        ids[name] = client.post("/api/v1/members", json={"name": name}, headers=pos).json["id"]
        for i, at in enumerate(dates):
            body = {"external_id": f"{name}-{i}", "member_id": ids[name], "amount": 900}
            body.update(currency="EUR", occurred_at=at + "+00:00")
            assert client.post("/api/v1/purchases", json=body, headers=pos).status_code == 201
    with app.app_context():
        wb1 = "2026-03-10T00:00:00"
        db.session.add(voucher(ids["T1"], "win_back", wb1, "wb1", status="used"))
        for name in ("T2", "T3", "T4"):
            db.session.add(voucher(ids[name], "win_back", wb1, "wb1"))
        for name in ("H1", "H2", "H3", "H4"):
            db.session.add(holdout(ids[name], "win_back", wb1, "wb1"))
        db.session.add(voucher(ids["T2"], "win_back", "2026-03-05T00:00:00", "wb0"))
        db.session.add(voucher(ids["C"], "come_back", "2026-03-20T00:00:01", "come_back"))
        db.session.add(voucher(ids["C"], "goodwill", "2026-02-28T23:59:59", "goodwill"))
        db.session.add(holdout(ids["H3"], "come_back", "2026-04-01T00:00:00", "come_back"))
        db.session.commit()

    r = client.get(
        "/api/v1/metrics/vouchers?start=2026-03-01&end=2026-03-31", headers=api_key("reports")
    )
    assert r.status_code == 200, r.json
    kinds = {k["kind"]: k for k in r.json["kinds"]}
    assert list(kinds) == ["come_back", "welcome", "win_back", "goodwill"]
    assert kinds["win_back"] == {
        "kind": "win_back",
        "issued": 5,
        "redeemed": 1,
        "redemption_rate": 0.2,
        "came_back": 4,
        "median_days_to_next_purchase": 12.5,
        "holdout": {
            "campaigns": ["wb1"],
            "treated": 4,
            "treated_bought": 2,
            "treated_rate": 0.5,
            "holdout": 4,
            "holdout_bought": 1,
            "holdout_rate": 0.25,
            "uplift": 0.25,
            "ci_low": -0.3982,
            "ci_high": 0.8982,
            "z": 0.7303,
            "p_value": 0.4652,
        },
    }
    assert kinds["come_back"] == {
        "kind": "come_back",
        "issued": 1,
        "redeemed": 0,
        "redemption_rate": 0.0,
        "came_back": 0,
        "median_days_to_next_purchase": None,
        "holdout": None,
    }
    for kind in ("welcome", "goodwill"):
        assert kinds[kind]["issued"] == 0 and kinds[kind]["redemption_rate"] is None


def test_two_proportion_test_matches_the_textbook() -> None:
    """OpenIntro Statistics (4th ed.), §6.2: the mammogram study, 500 of 44,425 deaths with
    mammograms against 505 of 44,405 without: difference −0.00012, 95% CI (−0.0015, 0.0013);
    pooled test Z = −0.17, p-value 0.865 (from the table at Z rounded to −0.17)."""
    t = two_proportion_test(500, 44425, 505, 44405)
    assert t is not None
    assert round(t.difference, 5) == -0.00012
    assert (round(t.ci_low, 4), round(t.ci_high, 4)) == (-0.0015, 0.0013)
    assert t.z is not None and t.p_value is not None
    assert round(t.z, 2) == -0.17
    assert t.p_value == pytest.approx(0.865, abs=0.005)


def test_two_proportion_test_edge_cases() -> None:
    assert two_proportion_test(1, 0, 1, 5) is None
    assert two_proportion_test(1, 5, 0, 0) is None
    nobody = two_proportion_test(0, 10, 0, 10)  # nobody bought: no variation to test
    assert nobody is not None and nobody.difference == 0 and nobody.z is None
    everybody = two_proportion_test(10, 10, 4, 4)
    assert everybody is not None and everybody.z is None and everybody.p_value is None
