"""Expiry by lot and pending points through the API and the CLI: the programme's settings, the
member's next expiry, the expiring lots, the expiry job, the points metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from loyalty.extensions import db
from loyalty.models.types import utcnow
from tests import factories

AMS = ZoneInfo("Europe/Amsterdam")


def enrol(client, pos) -> int:
    return client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json["id"]


def buy(client, pos, member_id: int, amount: int):
    body = {
        "external_id": f"sale-{factories.next_id()}",
        "member_id": member_id,
        "amount": amount,
        "currency": "EUR",
    }
    r = client.post("/api/v1/purchases", json=body, headers=pos)
    assert r.status_code == 201, r.json
    return r.json


def set_program(client, admin, **changes):
    r = client.put("/api/v1/program", json=changes, headers=admin)
    assert r.status_code == 200, r.json
    return r.json


def end_of_day_after(days: int, zone: ZoneInfo = AMS) -> datetime:
    """Midnight in `zone` ending the day `days` days after today there, in UTC."""
    day = utcnow().astimezone(zone).date() + timedelta(days=days + 1)
    return datetime.combine(day, datetime.min.time(), tzinfo=zone).astimezone(UTC)


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def aware(value: datetime | str) -> datetime:
    """A timestamp read with plain SQL (SQLite gives text without an offset), in UTC."""
    value = at(value) if isinstance(value, str) else value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def test_the_programme_takes_and_gives_pending_days(client, admin) -> None:
    body = set_program(client, admin, points_expire_after_days=30, pending_days=14)
    assert (body["points_expire_after_days"], body["pending_days"]) == (30, 14)
    again = client.get("/api/v1/program", headers=admin).json
    assert again["pending_days"] == 14
    for bad in (0, 366, "7", 1.5):
        r = client.put("/api/v1/program", json={"pending_days": bad}, headers=admin)
        assert (r.status_code, r.json["code"]) == (422, "validation_error"), bad
        assert list(r.json["errors"]) == ["pending_days"]
    assert set_program(client, admin, pending_days=None)["pending_days"] is None


def test_a_member_shows_the_next_expiry_and_lists_expiring_lots(client, admin, pos) -> None:
    set_program(client, admin, points_expire_after_days=30, timezone="Europe/Amsterdam")
    m = enrol(client, pos)
    assert client.get(f"/api/v1/members/{m}", headers=pos).json["next_expiry"] is None
    buy(client, pos, m, 2599)
    buy(client, pos, m, 1000)
    set_program(client, admin, points_expire_after_days=60)
    buy(client, pos, m, 5000)
    member = client.get(f"/api/v1/members/{m}", headers=pos).json
    assert member["next_expiry"]["points"] == 35  # both 30-day lots lapse at the same midnight
    assert at(member["next_expiry"]["at"]) == end_of_day_after(30)
    assert at(member["next_expiry"]["at"]).astimezone(AMS).strftime("%H:%M") == "00:00"
    r = client.get(f"/api/v1/members/{m}/expiring?days=45", headers=pos)
    assert r.status_code == 200
    assert (r.json["points"], [lot["points"] for lot in r.json["lots"]]) == (35, [25, 10])
    r = client.get(f"/api/v1/members/{m}/expiring?days=90", headers=pos)
    assert [lot["points"] for lot in r.json["lots"]] == [25, 10, 50]
    assert at(r.json["lots"][2]["expires_at"]) == end_of_day_after(60)
    default = client.get(f"/api/v1/members/{m}/expiring", headers=pos).json
    assert (default["days"], default["points"], default["lots"]) == (30, 0, [])


def test_expiring_refuses_bad_input(client, pos, api_key) -> None:
    m = enrol(client, pos)
    for bad in ("-1", "x", "3651"):
        r = client.get(f"/api/v1/members/{m}/expiring?days={bad}", headers=pos)
        assert (r.status_code, r.json["code"]) == (422, "validation_error"), bad
        assert list(r.json["errors"]) == ["days"]
    r = client.get(f"/api/v1/members/{m + 1}/expiring", headers=pos)
    assert (r.status_code, r.json["code"]) == (404, "not_found")
    r = client.get(f"/api/v1/members/{m}/expiring", headers=api_key("reports"))
    assert r.status_code == 403


def test_the_expiry_job_from_the_cli_runs_once_and_catches_up(client, admin, pos, runner) -> None:
    set_program(client, admin, points_expire_after_days=10, timezone="Europe/Amsterdam")
    m = enrol(client, pos)
    buy(client, pos, m, 10000)  # 100 points, lapse at the end of day 10
    set_program(client, admin, points_expire_after_days=20)
    buy(client, pos, m, 4000)  # 40 points, lapse at the end of day 20
    client.post(
        f"/api/v1/members/{m}/adjustments", json={"points": -30, "reason": "x"}, headers=admin
    )  # taken from the soonest-expiring lot: 70 of it are left
    today = utcnow().astimezone(AMS).date()
    day = (today + timedelta(days=9)).isoformat()  # the last day before the first lapses
    out = runner.invoke(args=["loyalty", "expire-points", "--as-of", day])
    assert out.exit_code == 0 and "Expired 0 points of 0 lots" in out.output, out.output
    day = (today + timedelta(days=10)).isoformat()
    out = runner.invoke(args=["loyalty", "expire-points", "--as-of", day])
    assert "Expired 70 points of 1 lots of 1 members" in out.output, out.output
    out = runner.invoke(args=["loyalty", "expire-points", "--as-of", day])
    assert "Expired 0 points of 0 lots" in out.output  # twice: nothing more
    day = (today + timedelta(days=40)).isoformat()  # after many missed nights
    out = runner.invoke(args=["loyalty", "expire-points", "--as-of", day])
    assert "Expired 40 points of 1 lots" in out.output
    member = client.get(f"/api/v1/members/{m}", headers=pos).json
    assert member["balance"]["points"] == 0 and member["next_expiry"] is None
    ledger = client.get(f"/api/v1/members/{m}/ledger", headers=admin).json
    expiries = [
        (e["kind"], e["points"], e["balance_after"]) for e in ledger if e["kind"] == "expire"
    ]
    assert expiries == [("expire", -40, 0), ("expire", -70, 40)]  # newest first
    factories.verify_ledger(runner)


def test_pending_points_become_available_on_read_when_due(client, admin, pos) -> None:
    set_program(client, admin, pending_days=14)
    m = enrol(client, pos)
    r = buy(client, pos, m, 10000)
    assert r["balance"] == {"points": 100, "held": 0, "pending": 100, "available": 0}
    body = {"external_id": "ret-1", "amount": 3000}
    ret = client.post(f"/api/v1/purchases/{r['id']}/returns", json=body, headers=pos).json
    assert ret["points_reversed"] == 30  # cancelled from the pending points: no debt
    assert ret["balance"] == {"points": 70, "held": 0, "pending": 70, "available": 0}
    reward = client.post(
        "/api/v1/rewards",
        json={"name": "Coffee", "kind": "free_item", "sku": "C", "points_cost": 50},
        headers=admin,
    ).json
    r = client.post(
        "/api/v1/redemptions", json={"member_id": m, "reward_id": reward["id"]}, headers=pos
    )
    assert (r.status_code, r.json["code"]) == (422, "insufficient_points")
    # the pending time is over (the lot is backdated): the next read releases them
    with client.application.app_context():
        db.session.execute(
            text("UPDATE point_lots SET pending_until = :t"),
            {"t": utcnow() - timedelta(seconds=1)},
        )
        db.session.commit()
    member = client.get(f"/api/v1/members/{m}", headers=pos).json
    assert member["balance"] == {"points": 70, "held": 0, "pending": 0, "available": 70}
    r = client.post(
        "/api/v1/redemptions", json={"member_id": m, "reward_id": reward["id"]}, headers=pos
    )
    assert r.status_code == 201


def test_lapsed_points_are_neither_shown_nor_spent_before_the_hourly_job(
    client, admin, pos
) -> None:
    """The expiry job runs at :05 past each hour; between a midnight and then, a member's lots
    that lapsed at that midnight are expired for them as soon as their balance is read or
    used, exactly as the job would: never spent, never shown."""
    set_program(client, admin, points_expire_after_days=30)
    reward = client.post(
        "/api/v1/rewards",
        json={"name": "Coffee", "kind": "free_item", "sku": "C", "points_cost": 50},
        headers=admin,
    ).json
    spender, reader = enrol(client, pos), enrol(client, pos)
    for m in (spender, reader):
        buy(client, pos, m, 6000)  # 60 points, a lot expiring in 30 days
    with client.application.app_context():  # a lot that lapsed a minute ago, job not run yet
        db.session.execute(
            text("UPDATE point_lots SET expires_at = :t"), {"t": utcnow() - timedelta(minutes=1)}
        )
        db.session.commit()
    r = client.post(
        "/api/v1/redemptions", json={"member_id": spender, "reward_id": reward["id"]}, headers=pos
    )
    assert (r.status_code, r.json["code"]) == (422, "insufficient_points"), r.json
    r = client.post(  # an adjustment takes no lapsed point either (nor leaves a debt)
        f"/api/v1/members/{spender}/adjustments",
        json={"points": -10, "reason": "correction"},
        headers=admin,
    )
    assert (r.status_code, r.json["code"]) == (422, "insufficient_points"), r.json
    # (a refused request writes nothing: its expiry too is the next read's or the job's)
    for m in (spender, reader):
        member = client.get(f"/api/v1/members/{m}", headers=pos).json
        assert member["balance"] == {"points": 0, "held": 0, "pending": 0, "available": 0}
    for m in (spender, reader):
        ledger = client.get(f"/api/v1/members/{m}/ledger", headers=admin).json
        assert [(e["kind"], e["points"]) for e in ledger] == [
            ("expire", -60),
            ("earn", 60),
        ], m


def test_points_metrics_issued_redeemed_expired_outstanding(
    client, admin, pos, runner, api_key
) -> None:
    set_program(client, admin, points_expire_after_days=10)
    m = enrol(client, pos)
    buy(client, pos, m, 50000)  # 500 issued
    reward = client.post(
        "/api/v1/rewards",
        json={"name": "5 off", "kind": "amount_off", "value": 500, "points_cost": 100},
        headers=admin,
    ).json
    body = {"member_id": m, "reward_id": reward["id"], "instant": True}
    assert client.post("/api/v1/redemptions", json=body, headers=pos).status_code == 201
    client.post(
        f"/api/v1/members/{m}/adjustments", json={"points": -50, "reason": "x"}, headers=admin
    )
    runner.invoke(args=["loyalty", "expire-points", "--as-of", "2099-01-01"])  # 350 expire
    today = utcnow().date()
    start = (today - timedelta(days=40)).isoformat()
    r = client.get(f"/api/v1/metrics/points?start={start}&end={today}", headers=api_key("reports"))
    assert r.status_code == 200, r.json
    body = r.json
    assert (body["issued"], body["redeemed"], body["adjusted"]) == (500, 100, -50)
    assert body["outstanding_at_start"] == 0
    # the job ran with today's clock: its entries are dated today, whatever as_of it was given
    assert (body["expired"], body["outstanding"]) == (350, 0)
    assert body["value_per_point"] == 5.0 and body["outstanding_value"] == 0
    assert body["months"][-1]["month"] == today.strftime("%Y-%m")
    assert body["months"][-1]["outstanding"] == 0
    assert sum(month["issued"] for month in body["months"]) == 500
    r = client.get(f"/api/v1/metrics/points?start={start}&end={today}", headers=pos)
    assert r.status_code == 403
    r = client.get(f"/api/v1/metrics/points?start={today}", headers=admin)
    assert r.status_code == 422 and "end" in r.json["errors"]


def test_imported_earnings_are_lots_with_the_programmes_terms(
    client, admin, runner, tmp_path
) -> None:
    """The import (the staging path on SQLite, the COPY path on PostgreSQL) makes a lot per
    earning, pending and expiring as the programme says, and the books still add up."""
    set_program(client, admin, points_expire_after_days=30, pending_days=7)
    path = tmp_path / "history.csv"
    path.write_text(
        "customer_ref,external_id,occurred_at,amount\n"
        "c1,x1,2026-01-01,20\nc1,x2,2026-01-02,40\nc2,x3,2026-01-02,5\n",
        encoding="utf-8",
    )
    out = runner.invoke(args=["loyalty", "import-purchases", str(path)])
    assert out.exit_code == 0, out.output
    with client.application.app_context():
        rows = db.session.execute(
            text(
                "SELECT m.external_ref, l.points, l.remaining, l.expires_at, l.pending_until, "
                "m.pending FROM point_lots l JOIN members m ON m.id = l.member_id "
                "ORDER BY l.id"
            )
        ).all()
    assert [(r[0], r[1], r[2], r[5]) for r in rows] == [
        ("c1", 20, 20, 60),
        ("c1", 40, 40, 60),
        ("c2", 5, 5, 5),
    ]
    utc = ZoneInfo("UTC")  # the programme's default time zone
    assert {aware(r[3]) for r in rows} == {end_of_day_after(30, utc)}
    assert {aware(r[4]) for r in rows} == {end_of_day_after(7, utc)}
    factories.verify_ledger(runner)
