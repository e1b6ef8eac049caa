"""GET /metrics/vouchers against a hand computation and, on seeded random histories, against a
plain reading of docs/metrics.md (purchases at the very issue, at a validity's start and end,
validities that start before or after the issue, holdouts); the z-test against a textbook example.

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
import math
import random
import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import pytest

from loyalty.domain.metrics import two_proportion_test
from loyalty.extensions import db
from loyalty.models import Member, Purchase, Voucher, VoucherHoldout
from tests import factories

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


# --- against a plain reading of docs/metrics.md ("Vouchers"), on seeded random histories ---------
FIRST = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_DAYS = 120
KINDS = ("come_back", "welcome", "win_back", "goodwill")
NORMAL = statistics.NormalDist()
MEMBERS = 80


@dataclass
class Case:
    """A voucher (status set) or a holdout record (status None)."""

    member: int
    kind: str
    campaign: str | None
    created: datetime
    valid_from: datetime
    valid_until: datetime
    status: str | None


def moment(rng: random.Random) -> datetime:
    """A time in the range, often on a day's first or last microsecond."""
    day = FIRST + timedelta(days=rng.randrange(SPAN_DAYS))
    pick = rng.random()
    if pick < 0.2:
        return day
    if pick < 0.35:
        return day + timedelta(days=1, microseconds=-1)
    return day + timedelta(microseconds=rng.randrange(86_400_000_000))


def window(rng: random.Random, created: datetime) -> tuple[datetime, datetime]:
    """A validity starting at the issue, the next day, before it or a moment after it."""
    pick = rng.random()
    if pick < 0.3:
        start = created
    elif pick < 0.5:
        start = created.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    elif pick < 0.75:
        start = created - timedelta(microseconds=rng.randrange(1, 20 * 86_400_000_000))
    else:
        start = created + timedelta(microseconds=rng.choice([1, rng.randrange(86_400_000_000)]))
    length = rng.choice([1, 86_400_000_000, rng.randrange(1, 40 * 86_400_000_000)])
    return start, start + timedelta(microseconds=length)


def voucher_history(seed: int, members: int) -> tuple[dict[int, list[datetime]], list[Case]]:
    """Purchases per member (index 0 … members − 1), with many exactly at an issue, at the start
    or the end of a validity or between a validity's start and the issue; vouchers and holdout
    records of every kind, some of them with the same issue time."""
    rng = random.Random(seed)
    bought: dict[int, list[datetime]] = {m: [] for m in range(members)}
    cases: list[Case] = []
    for m in range(members):
        bought[m] += [moment(rng) for _ in range(rng.choice([0, 1, 2, 3, 5, 8]))]
        for _ in range(rng.choice([0, 1, 2, 3, 4])):
            created = rng.choice([moment(rng)] + [c.created for c in cases[-3:]])
            start, until = window(rng, created)
            held = rng.random() < 0.3
            cases.append(
                Case(
                    m,
                    rng.choice(KINDS),
                    rng.choice(["c1", "c2", "c3"]) if held else rng.choice(["c1", "c2", None]),
                    created,
                    start,
                    until,
                    None if held else rng.choice(["active", "used", "void"]),
                )
            )
            for at in (created, start, until, min(start, created) + (created - start) / 2):
                if rng.random() < 0.3:
                    bought[m].append(at)
    return bought, cases


def rounded(value: Fraction | float | None, places: int) -> float | None:
    if value is None:
        return None
    exact = Fraction(value)
    quantum = Decimal(1).scaleb(-places)
    decimal = Decimal(exact.numerator) / Decimal(exact.denominator)
    return float(decimal.quantize(quantum, rounding=ROUND_HALF_UP))


def plain_holdout(treated: list[bool], held: list[bool], campaigns: set[str]) -> dict[str, Any]:
    """The treated-against-holdout figures as the table of metrics.md reads."""
    n1, x1, n2, x2 = len(treated), sum(treated), len(held), sum(held)
    out: dict[str, Any] = {"campaigns": sorted(campaigns), "treated": n1, "treated_bought": x1}
    out |= {"treated_rate": rounded(Fraction(x1, n1), 4) if n1 else None, "holdout": n2}
    out |= {"holdout_bought": x2, "holdout_rate": rounded(Fraction(x2, n2), 4)}
    stats = dict.fromkeys(("uplift", "ci_low", "ci_high", "z", "p_value"))
    if n1:
        p1, p2 = Fraction(x1, n1), Fraction(x2, n2)
        half = NORMAL.inv_cdf(0.975) * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
        stats |= {"uplift": p1 - p2, "ci_low": float(p1 - p2) - half}
        stats["ci_high"] = float(p1 - p2) + half
        pooled = Fraction(x1 + x2, n1 + n2)
        if 0 < pooled < 1:
            z = float(p1 - p2) / math.sqrt(
                pooled * (1 - pooled) * (Fraction(1, n1) + Fraction(1, n2))
            )
            stats |= {"z": z, "p_value": 2 * (1 - NORMAL.cdf(abs(z)))}
    return out | {k: rounded(v, 4) for k, v in stats.items()}


def plain_vouchers(
    bought: dict[int, list[datetime]], cases: list[Case], start: date, end: date
) -> list[dict[str, Any]]:
    p0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
    p1 = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)

    def in_window(c: Case) -> bool:
        return any(c.valid_from <= t < c.valid_until for t in bought[c.member])

    out = []
    for kind in KINDS:
        issued = [c for c in cases if c.status and c.kind == kind and p0 <= c.created < p1]
        waits = []
        for c in issued:
            after = [t for t in bought[c.member] if t > c.created]
            if after:
                waits.append(Fraction((min(after) - c.created) // timedelta(microseconds=1)))
        waits.sort()
        median = (waits[(len(waits) - 1) // 2] + waits[len(waits) // 2]) / 2 if waits else None
        held = [c for c in cases if not c.status and c.kind == kind and p0 <= c.created < p1]
        campaigns = {c.campaign for c in held if c.campaign}
        redeemed = sum(1 for c in issued if c.status == "used")
        item = {
            "kind": kind,
            "issued": len(issued),
            "redeemed": redeemed,
            "redemption_rate": rounded(Fraction(redeemed, len(issued)), 4) if issued else None,
            "came_back": len(waits),
            "median_days_to_next_purchase": (
                rounded(median / 86_400_000_000, 2) if median is not None else None
            ),
            "holdout": None,
        }
        if held:
            treated = [in_window(c) for c in issued if c.campaign in campaigns]
            item["holdout"] = plain_holdout(treated, [in_window(c) for c in held], campaigns)
        out.append(item)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_voucher_metrics_agree_with_a_plain_reading(app, client, api_key, seed: int) -> None:
    bought, cases = voucher_history(seed, MEMBERS)
    with app.app_context():
        till = factories.actor(db.session)
        ids = []
        for m in range(MEMBERS):
            member = Member(name=f"V{seed}-{m}")
            db.session.add(member)
            db.session.flush()
            ids.append(member.id)
            for i, at in enumerate(bought[m]):
                db.session.add(
                    Purchase(
                        member_id=member.id,
                        api_client_id=till.client_id,
                        external_id=f"v{seed}-{m}-{i}",
                        amount=100,
                        currency="EUR",
                        occurred_at=at,
                    )
                )
        for c in cases:
            common = {"member_id": ids[c.member], "kind": c.kind, "created_at": c.created}
            common |= {"valid_from": c.valid_from, "valid_until": c.valid_until}
            if c.status is None:
                row: Any = VoucherHoldout(campaign=c.campaign, holdout_percent=50, **common)
            else:
                row = Voucher(
                    code=f"R{next(_codes):09d}",
                    discount_type="amount",
                    value=500,
                    currency="EUR",
                    min_spend=0,
                    status=c.status,
                    campaign=c.campaign,
                    **common,
                )
            db.session.add(row)
        db.session.commit()
    rng = random.Random(seed * 5)
    periods = [(date(2025, 1, 1), date(2025, 3, 31)), (date(2025, 2, 1), date(2025, 2, 28))]
    for _ in range(4):
        first = date(2025, 1, 1) + timedelta(days=rng.randrange(SPAN_DAYS))
        periods.append((first, first + timedelta(days=rng.choice([0, 6, 30, 90]))))
    headers = api_key("reports")
    for start, end in periods:
        r = client.get(f"/api/v1/metrics/vouchers?start={start}&end={end}", headers=headers)
        assert r.status_code == 200, r.json
        assert r.json["kinds"] == plain_vouchers(bought, cases, start, end), (seed, start, end)
