"""Every retention, cohort, segment and feedback figure against a second, plain reading of
docs/metrics.md, on seeded random histories. The hand-computed fixtures (test_metrics_*.py) pin each
rule on a few members. Here the definitions are written out once more as straightforward Python over
the raw rows (no SQL, no shared code with loyalty.domain.metrics but the rounding rule the docs
state: half up), and the endpoints must agree with it exactly on histories of a hundred members:
purchases over fourteen months with many at 00:00:00 and 23:59:59 and on month ends, free purchases,
two stores and purchases without one, returns, feedback with scores missing at random, vouchers and
rewards used on purchases. A day boundary, a rounding or a precedence read differently shows up as
a mismatch, with the seed to replay it.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from loyalty.domain.rollups import TABLES
from loyalty.extensions import db
from loyalty.models import Feedback, Member, Purchase
from tests.factories import goodwill_code

FIRST = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 455  # 2025-01-01 .. 2026-03-31
STORES = ("s1", "s2", None)  # None: a purchase without a store


@dataclass
class Bought:
    member: str
    at: datetime
    amount: int
    store: str | None
    deal: str | None  # used a "voucher", a "reward", "both" or none


@dataclass
class Given:
    member: str
    at: datetime
    nps: int | None
    ces: int | None
    csat: int | None


def moment(rng: random.Random) -> datetime:
    """A time in the range, a third of them on a day's first or last second, some on month ends."""
    day = FIRST + timedelta(days=rng.randrange(DAYS))
    if rng.random() < 0.15:  # the last day of that month
        day = (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    pick = rng.random()
    if pick < 0.17:
        return day
    if pick < 0.34:
        return day + timedelta(hours=23, minutes=59, seconds=59)
    return day + timedelta(seconds=rng.randrange(1, 86399))


def history(seed: int) -> tuple[list[Bought], list[Given]]:
    rng = random.Random(seed)
    bought: list[Bought] = []
    given: list[Given] = []
    for i in range(100):
        ref = f"cust-{seed}-{i}"
        dealer = rng.random() < 0.3
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4, 6, 9])):
            amount = 0 if rng.random() < 0.05 else rng.randrange(1, 20000)
            deal = (
                rng.choice(["voucher", "reward", "both"]) if dealer and rng.random() < 0.5 else None
            )
            bought.append(Bought(ref, moment(rng), amount, rng.choice(STORES), deal))
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            scores = [rng.randrange(11), rng.randrange(1, 8), rng.randrange(1, 6)]
            kept = [rng.random() < 0.6 for _ in scores]
            kept[rng.randrange(3)] = True  # a record holds at least one score
            nps, ces, csat = (s if k else None for s, k in zip(scores, kept, strict=True))
            given.append(Given(ref, moment(rng), nps, ces, csat))
    bought.sort(key=lambda b: b.at)
    return bought, given


# --- the second reading of metrics.md ------------------------------------------------------------
def rounded(value: Fraction | None, places: int) -> float | None:
    if value is None:
        return None
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def share(numerator: int, denominator: int) -> Fraction | None:
    return Fraction(numerator, denominator) if denominator else None


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def retention(
    bought: list[Bought], returns: list[tuple[datetime, int, str | None]], start: date, end: date,
    store: str | None,
) -> dict[str, Any]:  # fmt: skip
    p0, p1 = day_start(start), day_start(end) + timedelta(days=1)
    q0 = p0 - (p1 - p0)
    scope = [b for b in bought if store is None or b.store == store]
    first: dict[str, datetime] = {}
    in_p: dict[str, int] = defaultdict(int)
    in_prev: set[str] = set()
    for b in scope:
        first[b.member] = min(first.get(b.member, b.at), b.at)
        if p0 <= b.at < p1:
            in_p[b.member] += 1
        elif q0 <= b.at < p0:
            in_prev.add(b.member)
    s, e = len(in_prev), len(in_p)
    new = sum(1 for m in in_p if p0 <= first[m] < p1)
    retained = len(in_prev & set(in_p))
    lost = s - retained
    purchases = sum(in_p.values())
    revenue = sum(b.amount for b in scope if p0 <= b.at < p1)
    churn = share(lost, s)
    aov = share(revenue, purchases)
    frequency = share(purchases, e)
    clv = aov * frequency / churn if aov is not None and frequency and churn else None
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "customers_at_start": s,
        "active_customers": e,
        "new_customers": new,
        "retained_customers": retained,
        "lost_customers": lost,
        "reactivated_customers": sum(
            1 for m in in_p if m not in in_prev and first[m] < q0
        ),  # bought in P, had bought before P₋, not in P₋: counted directly, not as E − N − R
        "purchases": purchases,
        "revenue": revenue,
        "returned_amount": sum(
            amount for at, amount, s_ in returns if p0 <= at < p1 and store in (None, s_)
        ),
        "repeat_customers": sum(1 for n in in_p.values() if n >= 2),
        "one_time_customers": sum(1 for n in in_p.values() if n == 1),
        "retention_rate": rounded(share(retained, s), 4),
        "churn_rate": rounded(churn, 4),
        "repeat_customer_rate": rounded(share(sum(1 for n in in_p.values() if n >= 2), e), 4),
        "purchase_frequency": rounded(frequency, 4),
        "average_order_value": rounded(aov, 2),
        "customer_lifetime_value": rounded(clv, 4),
    }


def month_number(at: datetime | date) -> int:
    return at.year * 12 + at.month - 1


def cohorts(bought: list[Bought], start: date, end: date) -> list[dict[str, Any]]:
    months: dict[str, set[int]] = defaultdict(set)
    for b in bought:
        months[b.member].add(month_number(b.at))
    last = month_number(end)
    members_of: dict[int, list[set[int]]] = defaultdict(list)
    for seen in months.values():
        if month_number(start) <= min(seen) <= last:
            members_of[min(seen)].append(seen)
    out = []
    for c in sorted(members_of):
        group = members_of[c]
        shares = [
            share(sum(1 for seen in group if c + k in seen), len(group))
            for k in range(last - c + 1)
        ]
        out.append(
            {
                "cohort": f"{c // 12:04d}-{c % 12 + 1:02d}",
                "size": len(group),
                "retention": [rounded(x, 4) for x in shares],
            }
        )
    return out


def segments(bought: list[Bought], given: list[Given], as_of: date) -> dict[str, int]:
    end = day_start(as_of) + timedelta(days=1)
    window, recent = end - timedelta(days=365), end - timedelta(days=90)
    counts = dict.fromkeys(
        ("lost", "at_risk", "new", "ambassador", "deal_seeker", "loyal", "occasional"), 0
    )
    members = {b.member for b in bought if b.at < end}
    for m in members:
        mine = [b for b in bought if b.member == m and b.at < end]
        times = [b.at for b in mine]
        n_window = sum(1 for t in times if t >= window)
        n_deals = sum(1 for b in mine if b.at >= window and b.deal)
        n_recent = sum(1 for t in times if t >= recent)
        answers = [g for g in given if g.member == m and window <= g.at < end]

        def latest(score: str, answers: list[Given] = answers) -> int | None:
            scored = [g for g in answers if getattr(g, score) is not None]
            return getattr(max(scored, key=lambda g: g.at), score) if scored else None

        nps, ces = latest("nps"), latest("ces")
        if n_window == 0:
            counts["lost"] += 1
        elif (nps is not None and nps <= 6) or (ces is not None and ces >= 5) or n_recent == 0:
            counts["at_risk"] += 1
        elif min(times) >= recent:
            counts["new"] += 1
        elif nps is not None and nps >= 9 and n_window >= 2:
            counts["ambassador"] += 1
        elif n_window >= 2 and 2 * n_deals >= n_window:
            counts["deal_seeker"] += 1
        elif n_window >= 2:
            counts["loyal"] += 1
        else:
            counts["occasional"] += 1
    return counts


def feedback(given: list[Given], start: date, end: date) -> dict[str, Any]:
    p0, p1 = day_start(start), day_start(end) + timedelta(days=1)
    rows = [g for g in given if p0 <= g.at < p1]
    nps = [g.nps for g in rows if g.nps is not None]
    ces = [g.ces for g in rows if g.ces is not None]
    csat = [g.csat for g in rows if g.csat is not None]
    promoters, detractors = sum(1 for x in nps if x >= 9), sum(1 for x in nps if x <= 6)
    return {
        "nps": rounded(share(100 * (promoters - detractors), len(nps)), 1),
        "ces_average": rounded(share(sum(ces), len(ces)), 2),
        "csat": rounded(share(100 * sum(1 for x in csat if x >= 4), len(csat)), 1),
        "responses": {"total": len(rows), "nps": len(nps), "ces": len(ces), "csat": len(csat)},
        "promoters": promoters,
        "passives": len(nps) - promoters - detractors,
        "detractors": detractors,
    }


# --- the test ------------------------------------------------------------------------------------
def periods(rng: random.Random) -> list[tuple[date, date]]:
    fixed = [
        (date(2026, 1, 1), date(2026, 3, 31)),  # a quarter
        (date(2025, 12, 1), date(2025, 12, 31)),  # a month
        (date(2025, 6, 30), date(2025, 6, 30)),  # one day
        (date(2025, 3, 1), date(2026, 2, 28)),  # a year, P₋ before the first purchase
    ]
    for _ in range(6):
        start = date(2025, 1, 1) + timedelta(days=rng.randrange(DAYS))
        fixed.append((start, start + timedelta(days=rng.randrange(0, 120))))
    return fixed


def import_history(runner, tmp_path: Path, bought: list[Bought], offset: int = 0) -> None:
    """The purchases through `flask loyalty import-purchases`, as a shop moving in would (their
    external ids p-0, p-1, … from `offset`)."""
    csv = tmp_path / f"history-{offset}.csv"
    lines = ["customer_ref,external_id,occurred_at,amount,currency,store_id"]
    for i, b in enumerate(bought, start=offset):
        at = b.at.isoformat()
        amount = f"{b.amount // 100}.{b.amount % 100:02d}"
        lines.append(f"{b.member},p-{i},{at},{amount},EUR,{b.store or ''}")
    csv.write_text("\n".join(lines) + "\n")
    out = runner.invoke(args=["loyalty", "import-purchases", str(csv)])
    assert out.exit_code == 0, out.output


def add_feedback(given: list[Given], members: dict[str, int]) -> None:
    for g in given:
        db.session.add(
            Feedback(
                member_id=members[g.member], nps=g.nps, ces=g.ces, csat=g.csat, created_at=g.at
            )
        )
    db.session.commit()


def post_returns(
    client, headers, bought: list[Bought], ids: dict[str, int], rng: random.Random
) -> list[tuple[datetime, int, str | None]]:
    """About one purchase in eight partly or fully returned, up to 40 days later."""
    returns: list[tuple[datetime, int, str | None]] = []
    for i, b in enumerate(bought):
        if b.amount == 0 or rng.random() > 0.12:
            continue
        at = b.at + timedelta(days=rng.randrange(0, 40), seconds=rng.randrange(86400))
        amount = rng.randrange(1, b.amount + 1)
        r = client.post(
            f"/api/v1/purchases/{ids[f'p-{i}']}/returns",
            json={"external_id": f"r-{i}", "amount": amount, "occurred_at": at.isoformat()},
            headers=headers,
        )
        assert r.status_code == 201, r.json
        returns.append((at, amount, b.store))
    return returns


def use_deals(client, headers, admin, bought: list[Bought], members: dict[str, int]) -> None:
    """The deals: a goodwill voucher redeemed at checkout and a reward redeemed at the till, each
    naming its purchase by order_ref (the purchase's external_id), as a webshop and a till do."""
    reward = client.post(
        "/api/v1/rewards",
        json={"name": "Cookie", "kind": "free_item", "sku": "C", "points_cost": 1},
        headers=admin,
    ).json
    funded: set[str] = set()
    for i, b in enumerate(bought):
        if not b.deal:
            continue
        member_id = members[b.member]
        if b.member not in funded:  # enough points for the rewards, whatever was bought
            r = client.post(
                f"/api/v1/members/{member_id}/adjustments",
                json={"points": 100, "reason": "test"},
                headers=admin,
            )
            assert r.status_code == 201, r.json
            funded.add(b.member)
        if b.deal in ("voucher", "both"):
            code = goodwill_code(client, admin, member_id)
            body = {"order_ref": f"p-{i}", "amount": 1000, "currency": "EUR"}
            r = client.post(f"/api/v1/vouchers/{code}/redeem", json=body, headers=headers)
            assert r.status_code == 200, r.json
        if b.deal in ("reward", "both"):
            body = {"member_id": member_id, "reward_id": reward["id"], "order_ref": f"p-{i}"}
            r = client.post("/api/v1/redemptions", json={**body, "instant": True}, headers=headers)
            assert r.status_code == 201 and r.json["status"] == "redeemed", r.json


def split_back_dated(bought: list[Bought], rng: random.Random) -> tuple[list[Bought], list[Bought]]:
    """The history in two imports: the second holds about one purchase in six and, for a few
    members with several purchases, their first one, so that it moves their first purchase (and
    cohort) earlier than the first import made it."""
    firsts: dict[str, int] = {}
    counts: dict[str, int] = defaultdict(int)
    for i, b in enumerate(bought):
        firsts.setdefault(b.member, i)
        counts[b.member] += 1
    movers = {i for m, i in firsts.items() if counts[m] >= 2 and rng.random() < 0.3}
    late = {i for i in range(len(bought)) if i in movers or rng.random() < 0.15}
    return [b for i, b in enumerate(bought) if i not in late], [
        b for i, b in enumerate(bought) if i in late
    ]


def roll_up(runner, *flags: str) -> str:
    out = runner.invoke(args=["loyalty", "metrics-rollup", *flags])
    assert out.exit_code == 0, out.output
    return out.output


def agree(get, bought, given, returns, checked: list[tuple[date, date]], seed) -> None:
    """Every endpoint equals the plain reading, on the periods `checked`."""
    for start, end in checked:
        for store in (None, "s1"):
            query = f"start={start}&end={end}" + (f"&store_id={store}" if store else "")
            got = get(f"/api/v1/metrics/retention?{query}")
            expected = retention(bought, returns, start, end, store)
            assert {k: got[k] for k in expected} == expected, (seed, query)
        got = get(f"/api/v1/metrics/feedback?start={start}&end={end}")
        expected = feedback(given, start, end)
        assert {k: got[k] for k in expected} == expected, (seed, start, end)

    for start, end in [
        (date(2025, 1, 1), date(2026, 3, 31)),
        (date(2025, 5, 1), date(2025, 11, 30)),
    ]:
        got = get(f"/api/v1/metrics/cohorts?start={start}&end={end}")
        assert got["cohorts"] == cohorts(bought, start, end), (seed, start, end)

    for as_of in (date(2025, 3, 31), date(2025, 12, 31), date(2026, 3, 31), date(2026, 11, 1)):
        got = get(f"/api/v1/metrics/segments?as_of={as_of}")
        expected = segments(bought, given, as_of)
        assert {k: got[k] for k in expected} == expected, (seed, as_of)
        assert got["members"] == sum(expected.values())


def damage(app) -> None:
    """Rollups made wrong on purpose: a day counted twice, a purchase pair moved, a first day
    moved, a cohort cell gone, a member's span moved, a benefit purchase given to another
    member."""
    with app.app_context():
        for statement in (
            "UPDATE purchase_days SET purchases = purchases + 1 WHERE member_id IN "
            "(SELECT MIN(member_id) FROM purchase_days)",
            "UPDATE member_firsts SET first_day = '2024-01-01' WHERE member_id IN "
            "(SELECT MAX(member_id) FROM member_firsts)",
            "UPDATE purchase_links SET purchases = purchases + 1 WHERE day IN "
            "(SELECT MIN(day) FROM purchase_links)",
            "DELETE FROM cohort_months WHERE cohort IN (SELECT MIN(cohort) FROM cohort_months)",
            "UPDATE member_spans SET last_day = '2001-01-01' WHERE member_id IN "
            "(SELECT MIN(member_id) FROM member_spans)",
            "UPDATE benefit_purchases SET member_id = member_id + 1 WHERE purchase_id IN "
            "(SELECT MIN(purchase_id) FROM benefit_purchases)",
        ):
            db.session.execute(text(statement))
        db.session.commit()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_metrics_agree_with_a_plain_reading_of_the_definitions(
    app, client, runner, api_key, tmp_path: Path, seed: int
) -> None:
    """On every path the figures can take: purchases past the rollups (a back-dated import not
    rolled up yet, moving first purchases earlier), the rollups caught up, after returns, deals
    and an erasure, and rollups damaged on purpose, found by the check and rebuilt."""
    bought, given = history(seed)
    rng = random.Random(seed * 7)
    first, back_dated = split_back_dated(bought, random.Random(seed * 11))
    import_history(runner, tmp_path, first)
    roll_up(runner)
    import_history(runner, tmp_path, back_dated, offset=len(first))
    bought = first + back_dated  # the ids of the CSV rows: p-0 … in this order
    headers = api_key("reports", "pos")
    with app.app_context():
        ids = dict(db.session.execute(select(Purchase.external_id, Purchase.id)).all())
        members = dict(db.session.execute(select(Member.external_ref, Member.id)).all())
        add_feedback(given, members)
    returns = post_returns(client, headers, bought, ids, rng)
    use_deals(client, headers, api_key("admin"), bought, members)
    checked = periods(rng)

    def get(path: str) -> dict[str, Any]:
        r = client.get(path, headers=headers)
        assert r.status_code == 200, r.json
        return r.json

    agree(get, bought, given, returns, checked, seed)  # the back-dated import read raw
    assert "The rollups equal the purchases." in roll_up(runner, "--check")
    agree(get, bought, given, returns, checked, seed)  # all from the rollups
    admin = api_key("admin")
    erased = members[bought[0].member]
    assert client.delete(f"/api/v1/members/{erased}", headers=admin).status_code == 204
    damage(app)
    out = runner.invoke(args=["loyalty", "metrics-rollup", "--check"])
    assert out.exit_code == 1, out.output
    assert all(f"{table}: 0 rows" not in out.output for table in TABLES), out.output
    assert "The rollups equal the purchases." in roll_up(runner, "--rebuild", "--check")
    agree(get, bought, given, returns, checked[:4], seed)
