"""Tiers at the HTTP edge and from the CLI: up by a purchase, down by policy, the calendar year in
the programme's time zone, the recompute and its dry run, and what GET /members/{id} shows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from loyalty.domain import tiers
from loyalty.domain.context import Actor
from loyalty.extensions import db
from loyalty.models import Member, Program, TierChange
from loyalty.models.types import utcnow

SILVER = {"name": "Silver", "qualifying_spend": 10000, "multiplier": 1.5, "benefits": []}
GOLD = {"name": "Gold", "qualifying_spend": 50000, "multiplier": 2, "benefits": ["Lounge"]}


@pytest.fixture
def member(client, pos) -> dict:
    return client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json


def set_program(client, admin, **fields: Any) -> dict:
    r = client.put("/api/v1/program", json=fields, headers=admin)
    assert r.status_code == 200, r.json
    return r.json


def buy(client, pos, member: dict, ext: str, amount: int, **extra: Any) -> dict:
    body = {
        "external_id": ext,
        "member_id": member["id"],
        "amount": amount,
        "currency": "EUR",
        **extra,
    }
    r = client.post("/api/v1/purchases", json=body, headers=pos)
    assert r.status_code == 201, r.json
    return r.json


def give_back(client, pos, purchase: dict, ext: str, amount: int) -> dict:
    body = {"external_id": ext, "amount": amount}
    r = client.post(f"/api/v1/purchases/{purchase['id']}/returns", json=body, headers=pos)
    assert r.status_code == 201, r.json
    return r.json


def changes(app, member_id: int) -> list[tuple[Any, ...]]:
    with app.app_context():
        rows = db.session.execute(
            select(TierChange.from_tier, TierChange.to_tier, TierChange.spend, TierChange.reason)
            .where(TierChange.member_id == member_id)
            .order_by(TierChange.id)
        )
        return [tuple(row) for row in rows]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_purchase_raises_the_tier_at_once_and_earns_at_the_tier_before_it(
    app, client, admin, pos, member
) -> None:
    set_program(client, admin, tiers=[SILVER, GOLD])
    first = buy(client, pos, member, "p1", 12000)
    assert first["points_earned"] == 120  # no tier yet: the base only
    m = client.get(f"/api/v1/members/{member['id']}", headers=pos).json
    assert m["tier"] == "Silver"
    assert changes(app, member["id"]) == [(None, "Silver", 12000, "purchase")]

    second = buy(client, pos, member, "p2", 10000)
    assert second["points_earned"] == 150  # 100 base + (1.5 − 1) × 100 for Silver
    progress = client.get(f"/api/v1/members/{member['id']}", headers=pos).json["tier_progress"]
    assert progress["spend"] == 22000
    assert (progress["next_tier"], progress["spend_to_next"]) == ("Gold", 28000)
    # immediate: if nothing more is bought, Silver goes when the second purchase leaves the
    # 365 days (the first one leaving still leaves 10000)
    assert at(progress["held_until"]) == at(second["occurred_at"]) + timedelta(days=365)

    buy(client, pos, member, "p3", 30000)
    m = client.get(f"/api/v1/members/{member['id']}", headers=pos).json
    assert m["tier"] == "Gold"
    assert m["tier_progress"]["next_tier"] is None
    assert m["tier_progress"]["spend_to_next"] is None
    assert changes(app, member["id"])[-1] == ("Silver", "Gold", 52000, "purchase")


def test_a_purchase_at_the_top_tier_changes_nothing(app, client, admin, pos, member) -> None:
    set_program(client, admin, tiers=[SILVER])
    buy(client, pos, member, "p1", 10000)
    buy(client, pos, member, "p2", 90000)
    assert changes(app, member["id"]) == [(None, "Silver", 10000, "purchase")]


def test_immediate_a_return_lowers_the_tier_at_once(app, client, admin, pos, member) -> None:
    set_program(client, admin, tiers=[SILVER, GOLD], tier_downgrade="immediate")
    purchase = buy(client, pos, member, "p1", 12000)
    give_back(client, pos, purchase, "r1", 1000)  # 11000 left: still Silver
    assert client.get(f"/api/v1/members/{member['id']}", headers=pos).json["tier"] == "Silver"
    give_back(client, pos, purchase, "r2", 2000)  # 9000: below Silver
    m = client.get(f"/api/v1/members/{member['id']}", headers=pos).json
    assert m["tier"] is None
    assert m["tier_progress"] == {
        "spend": 9000,
        "next_tier": "Silver",
        "spend_to_next": 1000,
        "held_until": None,
    }
    assert changes(app, member["id"]) == [
        (None, "Silver", 12000, "purchase"),
        ("Silver", None, 9000, "return"),
    ]


def test_end_of_period_a_return_never_lowers_the_tier_mid_period(
    app, client, admin, pos, member, runner
) -> None:
    set_program(
        client, admin, tiers=[SILVER, GOLD], tier_downgrade="end_of_period", tier_grace_days=10
    )
    before = utcnow()
    purchase = buy(client, pos, member, "p1", 60000)
    after = utcnow()
    give_back(client, pos, purchase, "r1", 55000)  # 5000 left: below every tier
    m = client.get(f"/api/v1/members/{member['id']}", headers=pos).json
    assert m["tier"] == "Gold"
    held = at(m["tier_progress"]["held_until"])
    # rolling_365: held 365 days from when it was reached, plus the 10 grace days
    assert before + timedelta(days=375) <= held <= after + timedelta(days=375)
    assert m["tier_progress"]["spend"] == 5000

    # the nightly recompute within the period changes nothing either
    result = runner.invoke(args=["loyalty", "recompute-tiers"])
    assert result.exit_code == 0, result.output
    assert "0 members moved." in result.output
    assert client.get(f"/api/v1/members/{member['id']}", headers=pos).json["tier"] == "Gold"

    # once the period and its grace are over, the spend of the 365 days then decides
    day_after = (held + timedelta(days=1)).date().isoformat()
    dry = runner.invoke(args=["loyalty", "recompute-tiers", "--as-of", day_after, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"member {member['id']}: Gold -> (none) (spend 0)" in dry.output
    assert "1 members would move." in dry.output
    assert client.get(f"/api/v1/members/{member['id']}", headers=pos).json["tier"] == "Gold"
    done = runner.invoke(args=["loyalty", "recompute-tiers", "--as-of", day_after])
    assert "1 members moved." in done.output
    m = client.get(f"/api/v1/members/{member['id']}", headers=pos).json
    assert (m["tier"], m["tier_progress"]["held_until"]) == (None, None)
    assert changes(app, member["id"])[-1] == ("Gold", None, 0, "recompute")


def test_the_calendar_year_starts_at_midnight_in_the_programmes_zone(
    app, client, admin, pos, member
) -> None:
    set_program(client, admin, timezone="Europe/Amsterdam", tier_window="calendar_year")
    # 23:30 on 31 December in Amsterdam (2025), then 00:30 on 1 January (2026)
    buy(client, pos, member, "old-year", 10000, occurred_at="2025-12-31T22:30:00Z")
    buy(client, pos, member, "new-year", 4000, occurred_at="2025-12-31T23:30:00Z")
    buy(client, pos, member, "june", 7000, occurred_at="2026-06-01T10:00:00Z")
    with app.app_context():
        policy = tiers.Policy(
            tiers=[SILVER, GOLD], window="calendar_year", timezone="Europe/Amsterdam"
        )
        mid_2026 = datetime(2026, 7, 1, tzinfo=UTC)
        assert policy.window_start(mid_2026) == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)
        moves = tiers.recompute(
            db.session, at=mid_2026, actor=Actor.cli(), policy=policy, dry_run=True
        )
        # 4000 + 7000 count in 2026 (Silver); the 10000 of 31 December does not
        assert [(m.member_id, m.to_tier, m.spend) for m in moves] == [
            (member["id"], "Silver", 11000)
        ]
        on_new_years_eve = datetime(2025, 12, 31, 23, 0, tzinfo=UTC)  # midnight in Amsterdam
        moves = tiers.recompute(
            db.session, at=on_new_years_eve, actor=Actor.cli(), policy=policy, dry_run=True
        )
        assert [(m.to_tier, m.spend) for m in moves] == [("Silver", 10000)]  # 2025's purchase
        db.session.rollback()


def _program(client, admin) -> dict:
    return client.get("/api/v1/program", headers=admin).json


def test_a_new_tier_table_recomputes_with_a_dry_run_that_lists_who_would_move(
    app, client, admin, pos, member
) -> None:
    other = client.post("/api/v1/members", json={"name": "Bo"}, headers=pos).json
    buy(client, pos, member, "p1", 20000)
    buy(client, pos, other, "p2", 60000)
    dry = client.put("/api/v1/program?dry_run=true", json={"tiers": [SILVER, GOLD]}, headers=admin)
    assert dry.status_code == 200, dry.json
    assert dry.json["tiers"][1]["name"] == "Gold"
    assert dry.json["tier_moves_count"] == 2
    assert dry.json["tier_moves"] == [
        {"member_id": member["id"], "from_tier": None, "to_tier": "Silver", "spend": 20000},
        {"member_id": other["id"], "from_tier": None, "to_tier": "Gold", "spend": 60000},
    ]
    assert _program(client, admin)["tiers"] == []  # nothing written
    assert client.get(f"/api/v1/members/{other['id']}", headers=pos).json["tier"] is None

    put = set_program(client, admin, tiers=[SILVER, GOLD])
    assert "tier_moves" not in put and put == _program(client, admin)
    assert client.get(f"/api/v1/members/{member['id']}", headers=pos).json["tier"] == "Silver"
    assert changes(app, other["id"]) == [(None, "Gold", 60000, "tier_table")]

    # Gold renamed and dearer: its holder is re-qualified from the spend
    platinum = {**GOLD, "name": "Platinum", "qualifying_spend": 70000}
    dry = client.put(
        "/api/v1/program?dry_run=true", json={"tiers": [SILVER, platinum]}, headers=admin
    ).json
    assert dry["tier_moves"] == [
        {"member_id": other["id"], "from_tier": "Gold", "to_tier": "Silver", "spend": 60000}
    ]
    # the same table again moves nobody
    again = client.put(
        "/api/v1/program?dry_run=true", json={"tiers": [SILVER, GOLD]}, headers=admin
    )
    assert (again.json["tier_moves_count"], again.json["tier_moves"]) == (0, [])


def test_tier_settings_are_checked_and_taken_back(client, admin) -> None:
    program = _program(client, admin)
    assert (program["tier_window"], program["tier_downgrade"], program["tier_grace_days"]) == (
        "rolling_365",
        "immediate",
        0,
    )
    for field, bad in (
        ("tier_window", "weekly"),
        ("tier_downgrade", "never"),
        ("tier_grace_days", -1),
        ("tier_grace_days", "7"),
    ):
        r = client.put("/api/v1/program", json={field: bad}, headers=admin)
        assert r.status_code == 422 and field in r.json["errors"], (field, r.json)
    r = client.put("/api/v1/program?dry_run=maybe", json={}, headers=admin)
    assert r.status_code == 422 and "dry_run" in r.json["errors"]
    set_program(
        client,
        admin,
        tier_window="calendar_year",
        tier_downgrade="end_of_period",
        tier_grace_days=30,
    )
    taken_back = {k: v for k, v in _program(client, admin).items()}
    assert client.put("/api/v1/program", json=taken_back, headers=admin).json == taken_back


def test_as_of_reads_the_end_of_that_day(app, client, admin) -> None:
    set_program(client, admin, timezone="Europe/Amsterdam")
    with app.app_context():
        assert tiers.end_of_day(db.session, date(2026, 3, 1)) == datetime(
            2026, 3, 1, 23, 0, tzinfo=UTC
        )


def test_the_quote_earns_at_the_members_tier_as_the_purchase_does(
    client, admin, pos, member
) -> None:
    set_program(client, admin, tiers=[SILVER, GOLD])
    buy(client, pos, member, "p1", 12000)  # Silver from now on
    basket = {"member_id": member["id"], "amount": 2000, "currency": "EUR"}
    quote = client.post("/api/v1/checkout/quote", json=basket, headers=pos)
    assert quote.status_code == 200, quote.json
    purchase = buy(client, pos, member, "p2", 2000)
    assert quote.json["points_earned"] == purchase["points_earned"] == 30  # 20 + 0.5 × 20
    assert quote.json["breakdown"] == purchase["breakdown"]
    assert [item["name"] for item in purchase["breakdown"]] == ["base", "tier Silver"]


def test_the_demo_has_a_tier_table(app, runner) -> None:
    result = runner.invoke(args=["loyalty", "seed-demo"])
    assert result.exit_code == 0, result.output
    assert "Demo programme" in result.output
    with app.app_context():
        table = db.session.get(Program, 1).tiers
    assert [(t["name"], t["qualifying_spend"], t["multiplier"]) for t in table] == [
        ("Silver", 25000, 1.25),
        ("Gold", 100000, 1.5),
    ]


def test_the_spend_is_read_on_a_purchase_only_when_its_gross_spend_reaches_the_next_tier(
    app, client, admin, pos, member, monkeypatch
) -> None:
    reads: list[int] = []
    real = tiers.spend_since

    def counted(conn: Any, member_id: int, start: datetime) -> int:
        reads.append(member_id)
        return real(conn, member_id, start)

    monkeypatch.setattr(tiers, "spend_since", counted)
    buy(client, pos, member, "no-tiers", 60000)
    assert reads == []  # no tier table: no query
    set_program(client, admin, tiers=[SILVER, GOLD])  # the recompute: Gold
    buy(client, pos, member, "at-the-top", 1000)
    assert reads == []  # the top tier: no query
    other = client.post("/api/v1/members", json={"name": "Bo"}, headers=pos).json
    buy(client, pos, other, "below", 1000)
    assert reads == []  # all they ever bought is below Silver: no window can reach it
    give_back(client, pos, buy(client, pos, other, "returned", 3000), "r-returned", 3000)
    assert reads == [other["id"]]  # the return's own check (`immediate`: it may lower a tier)
    reads.clear()  # 4,000 bought
    reaching = buy(client, pos, other, "reaching", SILVER["qualifying_spend"] - 4000)
    assert reads == [other["id"]]  # 10,000 bought, 7,000 net (the return): still no Silver
    with app.app_context():
        assert db.session.get(Member, other["id"]).gross_spend == 10000
        assert db.session.get(Member, other["id"]).tier is None
    assert reaching["points_earned"] > 0
    buy(client, pos, other, "silver", 3000)
    with app.app_context():
        assert db.session.get(Member, other["id"]).tier == "Silver"  # raised at once
    assert reads == [other["id"], other["id"]]


def test_end_of_period_calendar_year_holds_last_years_tier_through_this_year(
    app, client, admin, pos, member, runner
) -> None:
    set_program(
        client,
        admin,
        tiers=[SILVER, GOLD],
        timezone="Europe/Amsterdam",
        tier_window="calendar_year",
        tier_downgrade="end_of_period",
    )
    buy(client, pos, member, "june-2025", 12000, occurred_at="2025-06-01T10:00:00Z")
    buy(client, pos, member, "jan-2026", 3000, occurred_at="2026-01-05T10:00:00Z")
    result = runner.invoke(args=["loyalty", "recompute-tiers", "--as-of", "2026-01-10"])
    assert result.exit_code == 0, result.output
    assert f"member {member['id']}: (none) -> Silver (spend 3000)" in result.output
    with app.app_context():
        held = db.session.get(Member, member["id"]).tier_held_until
    # 2025's spend keeps Silver through 2026: until 1 January 2027, midnight in Amsterdam
    assert held == datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
