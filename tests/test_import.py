"""`flask loyalty import-purchases`: history in bulk, exact amounts, idempotent, bad lines reported.

Default programme: EUR (2 decimals), 1 point per unit, rounded down.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from loyalty.extensions import db
from loyalty.models import LedgerEntry, Member, Program, Purchase

GOOD = """customer_ref,external_id,occurred_at,amount,currency,store_id,loyalty_tier
cust-1,h-1,2026-01-05,29.99,EUR,s1,gold
cust-1,h-2,2026-01-06T10:00:00+01:00,10,,s1,gold
cust-2,h-3,2026-02-01T00:00:00Z,0.5,eur,,
cust-2,h-4,2026-02-02 08:30:00,0,,,
known,h-5,2026-03-01,120.05,,s2,
"""


def write(tmp_path: Path, text: str, name: str = "history.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(runner, path: str, *flags: str):
    return runner.invoke(args=["loyalty", "import-purchases", path, *flags])


def test_import_creates_members_purchases_and_points_once(
    app, runner, client, pos, tmp_path
) -> None:
    known = client.post(
        "/api/v1/members", json={"name": "Kim", "external_ref": "known"}, headers=pos
    )
    out = run(runner, write(tmp_path, GOOD))
    assert out.exit_code == 0, out.output
    assert "Ignored columns: loyalty_tier" in out.output
    assert (
        "5 rows read: 5 purchases imported, 0 already there, 2 members created, 159 points"
        in out.output
    )
    with app.app_context():
        rows = db.session.execute(
            select(
                Purchase.external_id,
                Member.external_ref,
                Purchase.amount,
                Purchase.occurred_at,
                Purchase.store_id,
                Purchase.points_earned,
            )
            .join(Member, Member.id == Purchase.member_id)
            .order_by(Purchase.id)
        ).all()
        assert [tuple(r) for r in rows] == [
            ("h-1", "cust-1", 2999, datetime(2026, 1, 5, tzinfo=UTC), "s1", 29),
            ("h-2", "cust-1", 1000, datetime(2026, 1, 6, 9, tzinfo=UTC), "s1", 10),
            ("h-3", "cust-2", 50, datetime(2026, 2, 1, tzinfo=UTC), None, 0),
            ("h-4", "cust-2", 0, datetime(2026, 2, 2, 8, 30, tzinfo=UTC), None, 0),
            ("h-5", "known", 12005, datetime(2026, 3, 1, tzinfo=UTC), "s2", 120),
        ]
        entries = db.session.execute(
            select(
                LedgerEntry.member_id,
                LedgerEntry.kind,
                LedgerEntry.points,
                LedgerEntry.balance_after,
            ).order_by(LedgerEntry.id)
        ).all()
        kim = known.json["id"]
        cust1 = db.session.scalar(select(Member.id).where(Member.external_ref == "cust-1"))
        # per member in purchase order, each with the balance after it
        assert sorted(tuple(e) for e in entries) == sorted(
            [(cust1, "earn", 29, 29), (cust1, "earn", 10, 39), (kim, "earn", 120, 120)]
        )
    assert client.get(f"/api/v1/members/{kim}", headers=pos).json["balance"]["points"] == 120
    again = run(runner, write(tmp_path, GOOD))
    assert again.exit_code == 0
    assert "5 rows read: 0 purchases imported, 5 already there, 0 members created" in again.output
    verified = runner.invoke(args=["loyalty", "verify-ledger"])
    assert verified.exit_code == 0 and "OK" in verified.output
    # the metrics see the history
    r = client.get("/api/v1/metrics/retention?start=2026-01-01&end=2026-03-31", headers=pos)
    assert r.status_code == 403
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Purchase)) == 5


def test_import_on_top_of_a_debt_and_a_reservation_keeps_the_books(
    app, runner, client, pos, admin, tmp_path
) -> None:
    m = client.post("/api/v1/members", json={"external_ref": "d"}, headers=pos).json
    p = client.post(
        "/api/v1/purchases",
        json={"external_id": "live", "member_id": m["id"], "amount": 5000, "currency": "EUR"},
        headers=pos,
    ).json
    client.post(
        f"/api/v1/members/{m['id']}/adjustments",
        json={"points": -50, "reason": "spent"},
        headers=admin,
    )
    client.post(
        f"/api/v1/purchases/{p['id']}/returns",
        json={"external_id": "r", "amount": 5000},
        headers=pos,
    )
    assert client.get(f"/api/v1/members/{m['id']}", headers=pos).json["balance"]["available"] == -50
    out = run(
        runner,
        write(
            tmp_path,
            "customer_ref,external_id,occurred_at,amount\nd,x1,2026-01-01,20\nd,x2,2026-01-02,40\n",
        ),
    )
    assert out.exit_code == 0, out.output
    assert client.get(f"/api/v1/members/{m['id']}", headers=pos).json["balance"] == {
        "points": 10,
        "held": 0,
        "available": 10,
    }
    assert runner.invoke(args=["loyalty", "verify-ledger"]).exit_code == 0


def test_no_earn_records_purchases_without_points(app, runner, tmp_path) -> None:
    out = run(runner, write(tmp_path, GOOD), "--no-earn")
    assert (
        out.exit_code == 0
        and "5 purchases imported" in out.output
        and "0 points earned" in out.output
    )
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 0
        assert db.session.scalar(select(func.sum(Purchase.points_earned))) == 0
        assert db.session.scalar(select(func.sum(Member.points))) == 0


def test_new_members_are_numbered_in_the_order_the_file_first_names_them(
    app, runner, tmp_path
) -> None:
    # refs whose sorted and hashed orders differ from the file's; 3 batches of 2 rows
    refs = ["zeta", "alpha", "mu", "alpha", "beta", "zeta", "omega", "kappa"]
    text = "customer_ref,external_id,occurred_at,amount\n" + "".join(
        f"{ref},o-{i},2026-01-0{i + 1},1\n" for i, ref in enumerate(refs)
    )
    out = run(runner, write(tmp_path, text), "--batch-size", "3")
    assert out.exit_code == 0, out.output
    with app.app_context():
        created = db.session.scalars(select(Member.external_ref).order_by(Member.id)).all()
    assert created == ["zeta", "alpha", "mu", "beta", "omega", "kappa"]


BAD = """customer_ref,external_id,occurred_at,amount
ok-1,g-1,2026-01-05,1.00
ok-1,g-2,2026-01-06,2.00
ok-1,g-3,2026-01-07,3.00
c1,b1,2026-01-05,29.999
c1,b2,yesterday,10
,b3,2026-01-05,1
c3,b4,2026-01-05,-1
c3,b5,2099-01-05,1
c4,b6,2026-01-05
c5,b7,2026-01-05,12.5,extra
c6,b8,2026-01-05,1e3
c6,b8,2026-01-05,5
c6,b8,2026-01-06,5
c7,b9,2026-01-05,5,
ok-2,g-4,2026-03-01,4
"""


def test_bad_lines_are_reported_and_their_batches_not_written(app, runner, tmp_path) -> None:
    out = run(runner, write(tmp_path, BAD), "--batch-size", "3")
    assert out.exit_code == 1
    for message in [
        "line 5: amount: '29.999' has more decimals than EUR has (2)",
        "line 6: occurred_at: 'yesterday' is not an ISO date or date-time",
        "line 7: customer_ref: is empty",
        "line 8: amount: '-1' is not a non-negative decimal amount like 29.99",
        "line 9: occurred_at: '2099-01-05' lies in the future",
        "line 10: row: 3 fields, the header has 4",
        "line 11: row: 5 fields, the header has 4",
        "line 12: amount: '1e3' is not a non-negative decimal amount like 29.99",
        "line 14: external_id: repeats line 13",
        "line 15: row: 5 fields, the header has 4",
        "Lines 5-7 were not imported",
        "Lines 8-10 were not imported",
        "Lines 11-13 were not imported",
        "Lines 14-16 were not imported",
    ]:
        assert message in out.output, (message, out.output)
    assert "Lines 2-4" not in out.output
    with app.app_context():
        # the first batch (lines 2-4) was good and is written; nothing else
        ids = db.session.scalars(select(Purchase.external_id).order_by(Purchase.id)).all()
        assert ids == ["g-1", "g-2", "g-3"]
    check = run(runner, write(tmp_path, BAD), "--check")
    assert check.exit_code == 1 and "Lines 2-16 would not be imported" in check.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("customer_ref,external_id,amount\nc,e,1\n", "the header lacks occurred_at"),
    ],
)
def test_a_file_that_is_no_import_is_refused(runner, tmp_path, text, message) -> None:
    out = run(runner, write(tmp_path, text))
    assert out.exit_code == 1 and message in out.output


@pytest.mark.parametrize(
    ("currency", "exponent", "amount", "expected"),
    [
        ("JPY", 0, "1250", 1250),
        ("JPY", 0, "12.5", None),
        ("KWD", 3, "1.234", 1234),
        ("KWD", 3, "1.2345", None),
    ],
)
def test_amounts_are_exact_in_the_programmes_currency(
    app, runner, tmp_path, currency, exponent, amount, expected
) -> None:
    with app.app_context():
        db.session.execute(update(Program).values(currency=currency, currency_exponent=exponent))
        db.session.commit()
    out = run(
        runner,
        write(
            tmp_path,
            f"customer_ref,external_id,occurred_at,amount,currency\nc,e,2026-01-01,{amount},{currency}\n",
        ),
    )
    with app.app_context():
        stored = db.session.scalar(select(Purchase.amount))
    if expected is None:
        assert (
            out.exit_code == 1 and f"more decimals than {currency} has ({exponent})" in out.output
        )
        assert stored is None
    else:
        assert out.exit_code == 0, out.output
        assert stored == expected


def test_another_currency_is_a_bad_line(runner, tmp_path) -> None:
    out = run(
        runner,
        write(
            tmp_path, "customer_ref,external_id,occurred_at,amount,currency\nc,e,2026-01-01,1,USD\n"
        ),
    )
    assert out.exit_code == 1 and "line 2: currency: USD is not the programme's EUR" in out.output


@pytest.mark.parametrize(
    ("rate", "rounding", "amount", "minor", "points"),
    [
        (3, "half_up", "0.35", 35, 1),
        (3, "up", "0.35", 35, 2),
        (3, "down", "0.35", 35, 1),
        (3, "half_up", "0.50", 50, 2),
        (7, "down", "0", 0, 0),
    ],
)
def test_an_imported_purchase_earns_what_the_same_live_purchase_earns(
    app, runner, client, pos, tmp_path, rate, rounding, amount, minor, points
) -> None:
    with app.app_context():
        db.session.execute(update(Program).values(points_per_unit=rate, rounding=rounding))
        db.session.commit()
    member = client.post("/api/v1/members", json={"external_ref": "same"}, headers=pos).json
    live = client.post(
        "/api/v1/purchases",
        json={
            "external_id": "live",
            "member_id": member["id"],
            "amount": minor,
            "currency": "EUR",
        },
        headers=pos,
    )
    assert live.status_code == 201, live.json
    out = run(
        runner,
        write(
            tmp_path,
            f"customer_ref,external_id,occurred_at,amount\nsame,hist,2026-01-01,{amount}\n",
        ),
    )
    assert out.exit_code == 0, out.output
    assert f"{points} points earned" in out.output
    with app.app_context():
        earned = dict(
            db.session.execute(select(Purchase.external_id, Purchase.points_earned)).all()
        )
    assert earned == {"live": points, "hist": points}
    assert client.get(f"/api/v1/members/{member['id']}", headers=pos).json["balance"]["points"] == (
        2 * points
    )
