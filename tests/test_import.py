"""`flask loyalty import-purchases`: history in bulk, exact amounts, idempotent, bad lines reported.

Default programme: EUR (2 decimals), 1 point per unit, rounded down.
"""

from __future__ import annotations

import codecs
import io
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from loyalty.domain import imports
from loyalty.domain.context import Limits
from loyalty.domain.imports import source
from loyalty.extensions import db
from loyalty.models import LedgerEntry, Member, Program, Purchase
from loyalty.models.types import utcnow

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
        "pending": 0,
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


# Files as retailers' tills and Excel write them ------------------------------------------------
HEADER_NL = "customer_ref;external_id;occurred_at;amount;store_id;omschrijving\r\n"
DUTCH = HEADER_NL + (
    "josé;k-1;2026-01-05;12,50;Café Noord;Koffie à €2,50\r\n"
    "josé;k-2;2026-01-06T10:00:00+01:00;1.234,50;Café Noord;\r\n"
    'anaïs;k-3;2026-02-01;0,5;"Zuid; hal 2";\r\n'
    "anaïs;k-4;2026-02-02;7;;\r\n"
)
DUTCH_ROWS = [
    ("k-1", "josé", 1250, "Café Noord", 12),
    ("k-2", "josé", 123450, "Café Noord", 1234),
    ("k-3", "anaïs", 50, "Zuid; hal 2", 0),
    ("k-4", "anaïs", 700, None, 7),
]


def write_bytes(tmp_path: Path, data: bytes, name: str = "export.csv") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def imported_rows(app) -> list[tuple]:
    with app.app_context():
        rows = db.session.execute(
            select(
                Purchase.external_id,
                Member.external_ref,
                Purchase.amount,
                Purchase.store_id,
                Purchase.points_earned,
            )
            .join(Member, Member.id == Purchase.member_id)
            .order_by(Purchase.external_id)
        ).all()
    return [tuple(r) for r in rows]


def table_counts(app) -> dict[str, int]:
    """Rows in every table of the schema."""
    with app.app_context():
        return {
            t.name: db.session.scalar(select(func.count()).select_from(t))
            for t in db.metadata.sorted_tables
        }


def test_a_dutch_till_export_windows_1252_semicolons_decimal_commas(app, runner, tmp_path) -> None:
    out = run(runner, write_bytes(tmp_path, DUTCH.encode("cp1252")), "--decimal-comma")
    assert out.exit_code == 0, out.output
    assert (
        "Encoding: Windows-1252 (byte 0xe9 on line 2 is not UTF-8; --encoding to say otherwise)."
        in out.output
    )
    assert "Columns separated by ';' (as the header shows); amounts with a decimal comma." in (
        out.output
    )
    assert "Ignored columns: omschrijving" in out.output
    assert (
        "4 rows read: 4 purchases imported, 0 already there, 2 members created, "
        "1253 points earned." in out.output
    )
    assert imported_rows(app) == DUTCH_ROWS


def test_decimal_commas_without_the_flag_are_refused_with_the_way_out(
    app, runner, tmp_path
) -> None:
    out = run(runner, write_bytes(tmp_path, DUTCH.encode("cp1252")))
    assert out.exit_code == 1 and type(out.exception) is SystemExit
    assert (
        "line 2: amount: '12,50' is not a non-negative decimal amount like 29.99 (for decimal "
        "commas, as in 29,99, use --decimal-comma)" in out.output
    )
    assert "line 3: amount: '1.234,50' is not a non-negative decimal amount" in out.output
    assert "line 5: amount" not in out.output  # 7 is 7.00 either way
    assert "Lines 2-5 were not imported" in out.output
    assert imported_rows(app) == []


@pytest.mark.parametrize(
    ("data", "flags", "encoding", "separator"),
    [
        pytest.param(
            codecs.BOM_UTF8 + DUTCH.encode(),
            [],
            "UTF-8 (byte-order mark)",
            "';' (as the header shows)",
            id="excel-csv-utf8-bom",
        ),
        pytest.param(
            DUTCH.replace(";", "\t").replace('"Zuid\t hal 2"', "Zuid; hal 2").encode(),
            [],
            "UTF-8 (valid UTF-8 throughout)",
            "tabs (as the header shows)",
            id="utf8-tabs",
        ),
        pytest.param(
            DUTCH.replace("\r\n", "\r").encode("cp1252"),
            ["--encoding", "cp1252", "--delimiter", ";"],
            "Windows-1252 (as given)",
            "';' (as given)",
            id="cp1252-given-mac-line-ends",
        ),
        pytest.param(
            DUTCH.replace("€", "EUR").encode("latin-1"),
            ["--encoding", "latin-1"],
            "iso8859-1 (as given)",
            "';' (as the header shows)",
            id="latin-1-given",
        ),
    ],
)
def test_encodings_and_delimiters_are_found_or_taken_as_given(
    app, runner, tmp_path, data, flags, encoding, separator
) -> None:
    out = run(runner, write_bytes(tmp_path, data), "--decimal-comma", *flags)
    assert out.exit_code == 0, out.output
    assert f"Encoding: {encoding}." in out.output
    assert f"Columns separated by {separator}; amounts with a decimal comma." in out.output
    assert imported_rows(app) == DUTCH_ROWS  # é, ï and the quoted ';' read as written


def test_decimal_commas_in_a_comma_separated_file_are_quoted(app, runner, tmp_path) -> None:
    text = 'customer_ref,external_id,occurred_at,amount\nc,q-1,2026-01-01,"1.234,56"\n'
    out = run(runner, write(tmp_path, text), "--decimal-comma")
    assert out.exit_code == 0, out.output
    assert imported_rows(app) == [("q-1", "c", 123456, None, 1234)]


def test_a_delimiter_given_that_the_header_contradicts_is_named(runner, tmp_path) -> None:
    out = run(runner, write_bytes(tmp_path, DUTCH.encode()), "--delimiter", ",")
    assert out.exit_code == 1 and type(out.exception) is SystemExit
    assert "line 1: the header lacks customer_ref, external_id, occurred_at, amount" in out.output
    assert "its columns are separated by ';', not ','" in out.output


GOOD_HEADER = "customer_ref,external_id,occurred_at,amount\n"
NOT_UTF8_NOR_1252 = GOOD_HEADER + "josé,e-1,2026-01-01,1\nc,e-2,2026-01-01,2\nc\x81,e-3,x,3\n"


@pytest.mark.parametrize(
    ("data", "flags", "message"),
    [
        pytest.param(
            (GOOD_HEADER + "c,e-1,2026-01-01,1\nJosé,e-2,2026-01-01,2\n").encode("cp1252"),
            ["--encoding", "utf-8"],
            "line 3: byte 0xe9 is not UTF-8",
            id="wrong-encoding-given",
        ),
        pytest.param(
            (GOOD_HEADER + "c,e-1,2026-01-01,1\rc,e-2,2026-01-01,2\rJosé,e-3,2026-01-01,3\r")
            .replace("\n", "\r")
            .encode("cp1252"),
            ["--encoding", "utf-8"],
            "line 4: byte 0xe9 is not UTF-8",
            id="wrong-encoding-given-mac-line-ends",
        ),
        pytest.param(
            NOT_UTF8_NOR_1252.encode("latin-1"),
            [],
            "line 4: byte 0x81 is not Windows-1252, and byte 0xe9 on line 2 is not UTF-8: "
            "give the file's encoding with --encoding",
            id="neither-utf8-nor-cp1252",
        ),
        pytest.param(
            bytes(range(256)) * 4, [], "line 3: byte 0x81 is not Windows-1252", id="binary"
        ),
        pytest.param(
            (GOOD_HEADER + "josé,e-1,2026-01-01,1\nc,e-2,2026-01-01,2\n").encode()
            + "René,e-3,2026-01-01,3\n".encode("cp1252"),
            [],
            "line 2: 'é' is written in UTF-8, but byte 0xe9 on line 4 is not UTF-8: the file "
            "mixes encodings; give the one to read it with --encoding",
            id="utf8-and-cp1252-mixed",
        ),
        pytest.param(
            (GOOD_HEADER + "c,e-1,2026-01-01,1\n").encode("utf-16"),
            [],
            "line 1: the file is UTF-16 or UTF-32 (Excel's 'Unicode text'); save it as "
            "'CSV UTF-8' or 'CSV'",
            id="utf-16",
        ),
        pytest.param(
            codecs.BOM_UTF8 + b"customer_ref,external_id,occurred_at,amount\n",
            ["--encoding", "cp1252"],
            "line 1: the file starts with a UTF-8 byte-order mark, not cp1252 text",
            id="bom-but-cp1252-given",
        ),
        pytest.param(
            (GOOD_HEADER + "c,e-1,2026-01-01,1\nc,e-2,2026-01-01\nc,e-3,2026-01-01,3,x\n").encode(),
            [],
            "line 3: row: 3 fields, the header has 4",
            id="ragged-rows",
        ),
        pytest.param(
            (GOOD_HEADER + 'c,e-1,2026-01-01,"' + "x" * 140_000 + "\n").encode(),
            [],
            "line 2: row: cannot be read as CSV: field larger than field limit (131072)",
            id="unterminated-quote",
        ),
        pytest.param(
            (GOOD_HEADER + "c,e-1,31-12-2025,1\n").encode(),
            [],
            "line 2: occurred_at: '31-12-2025' is not an ISO date or date-time like 2026-03-01",
            id="dutch-date",
        ),
        pytest.param(
            (GOOD_HEADER + "c,e-1,0001-01-01T00:00:00+01:00,1\n").encode(),
            [],
            "line 2: occurred_at: '0001-01-01T00:00:00+01:00' is out of range",
            id="year-1-positive-offset",
        ),
        pytest.param(
            (GOOD_HEADER + "c,e-1,9999-12-31T23:00:00-05:00,1\n").encode(),
            [],
            "line 2: occurred_at: '9999-12-31T23:00:00-05:00' is out of range",
            id="year-9999-negative-offset",
        ),
        pytest.param(
            (GOOD_HEADER + "c,e-1,1999-12-31T23:59:59Z,1\n").encode(),
            [],
            "line 2: occurred_at: '1999-12-31T23:59:59Z' is before 2000-01-01, the first day "
            "of the programme's dates",
            id="before-the-programmes-dates",
        ),
        pytest.param(
            (GOOD_HEADER.replace(",", ";") + "c;e-1;2026-01-01;12,5x\n").encode(),
            ["--decimal-comma"],
            "line 2: amount: '12,5x' is not a non-negative decimal amount like 29,99 or 1.234,50",
            id="bad-amount",
        ),
        pytest.param(
            (GOOD_HEADER.replace(",", ";") + "c;e-1;2026-01-01;100.000,01\n").encode(),
            ["--decimal-comma"],
            "line 2: amount: '100.000,01' is above the limit LOYALTY_MAX_PURCHASE_AMOUNT = "
            "10000000 (minor units)",
            id="amount-above-the-purchase-limit",
        ),
        pytest.param(
            (GOOD_HEADER + "c\x00d,e-1,2026-01-01,1\n").encode(),
            [],
            "line 2: customer_ref: contains a NUL character",
            id="nul",
        ),
        pytest.param(
            b"customer_ref;external_id;amount\nc;e;1\n",
            [],
            "line 1: the header lacks occurred_at (it has customer_ref, external_id, amount)",
            id="missing-header-column",
        ),
        pytest.param(
            b"customer_ref,external_id,occurred_at,amount,Amount\nc,e,2026-01-01,1,2\n",
            [],
            "line 1: the header names amount more than once",
            id="column-named-twice",
        ),
        pytest.param(
            b'customer_ref,"' + b"x" * 140_000 + b"\n",
            [],
            "line 1: the header cannot be read as CSV: field larger than field limit (131072)",
            id="header-no-csv",
        ),
        pytest.param(b"", [], "the file is empty", id="empty"),
        pytest.param(codecs.BOM_UTF8, [], "the file is empty", id="bom-only"),
        pytest.param(b"\r\n\r\n", [], "line 1: the header row is empty", id="blank-lines"),
    ],
)
def test_a_broken_file_stops_with_a_line_numbered_message_never_a_traceback(
    app, runner, tmp_path, data, flags, message
) -> None:
    path = write_bytes(tmp_path, data)
    for check in ([], ["--check"]):
        out = run(runner, path, *flags, *check)
        # an exception other than the exit is what would have printed a traceback
        assert type(out.exception) is SystemExit, out.exception
        assert out.exit_code == 1 and "Traceback" not in out.output
        assert message in out.output, out.output
    assert table_counts(app)["purchases"] == table_counts(app)["members"] == 0


def test_an_unknown_encoding_is_a_usage_error(runner, tmp_path) -> None:
    path = write(tmp_path, GOOD)
    for name, message in [
        ("klingon", "'klingon' is not a text encoding Python knows"),
        ("utf-16", "'utf-16' does not keep ASCII as it is"),
    ]:
        out = run(runner, path, "--encoding", name)
        assert out.exit_code == 2 and type(out.exception) is SystemExit
        assert message in out.output and "Traceback" not in out.output


CHECKED = """customer_ref,external_id,occurred_at,amount
known,c-1,2026-01-05,10.00
old,c-2,2026-01-06,20.00
new-1,c-3,2026-01-07,30.50
new-2,c-4,2026-01-08,40.00
new-1,c-5,2026-01-09,5.00
new-3,c-6,2026-01-10,oops
new-3,c-7,2026-01-11,6.00
new-2,c-8,2026-01-12,7.00
"""


def test_check_reports_what_an_import_would_do_and_writes_nothing(
    app, runner, client, pos, tmp_path
) -> None:
    client.post("/api/v1/members", json={"external_ref": "known"}, headers=pos)
    path = write(tmp_path, CHECKED)
    before = table_counts(app)
    first = run(runner, path, "--check", "--batch-size", "3")
    assert table_counts(app) == before  # not even the import's API client
    assert first.exit_code == 1
    assert (
        "8 rows checked, nothing written: 5 purchases would be imported, 0 are already there, "
        "4 members would be created, 73 points would be earned; 1 error(s)." in first.output
    )
    assert "line 7: amount: 'oops'" in first.output
    assert "Lines 5-7 would not be imported" in first.output
    # part of it imported already: those are counted as there, their members as known
    part = write(tmp_path, GOOD_HEADER + "old,c-2,2026-01-06,20.00\n", "part.csv")
    out = run(runner, part)
    assert out.exit_code == 0, out.output
    before = table_counts(app)
    check = run(runner, path, "--check", "--batch-size", "3")
    assert table_counts(app) == before
    assert (
        "8 rows checked, nothing written: 4 purchases would be imported, 1 are already there, "
        "3 members would be created, 53 points would be earned; 1 error(s)." in check.output
    )
    # and the import does what the check said
    done = run(runner, path, "--batch-size", "3")
    assert (
        "8 rows read: 4 purchases imported, 1 already there, 3 members created, "
        "53 points earned." in done.output
    )
    assert [r[0] for r in imported_rows(app)] == ["c-1", "c-2", "c-3", "c-7", "c-8"]


EUR = imports.ProgramRates("EUR", 2, 1, "down")


@pytest.mark.parametrize(
    ("raw", "point", "comma"),
    [
        # (text, minor units with a decimal point, with a decimal comma); a str: the error
        ("29.99", 2999, "not a non-negative decimal amount like 29,99 or 1.234,50"),
        ("29,99", "like 29.99 (for decimal commas, as in 29,99, use --decimal-comma)", 2999),
        ("29.9", 2990, "like 29,99"),
        ("29,9", "use --decimal-comma", 2990),
        (" 12 ", 1200, 1200),
        ("0", 0, 0),
        ("007", 700, 700),
        ("1.234", "has more decimals than EUR has (2)", 123400),
        ("1.234,50", "use --decimal-comma", 123450),
        ("99.999,99", "like 29.99", 9999999),
        ("1.000.000", "like 29.99", "is above the limit"),
        ("1234,5", "use --decimal-comma", 123450),
        ("1,234.50", "like 29.99", "like 29,99"),
        ("29.999", "has more decimals than EUR has (2)", 2999900),  # the flag decides
        ("29,999", "use --decimal-comma", "has more decimals than EUR has (2)"),
        ("1.23,50", "like 29.99", "like 29,99"),
        ("1234.567,00", "like 29.99", "like 29,99"),
        ("1.234.5", "like 29.99", "like 29,99"),
        ("12.", "like 29.99", "like 29,99"),
        (".50", "like 29.99", "like 29,99"),
        (",50", "like 29.99", "like 29,99"),
        ("12,", "like 29.99", "like 29,99"),
        ("", "like 29.99", "like 29,99"),
        ("-1", "like 29.99", "like 29,99"),
        ("+1", "like 29.99", "like 29,99"),
        ("1e3", "like 29.99", "like 29,99"),
        ("€12,50", "like 29.99", "like 29,99"),
        ("1 234,50", "like 29.99", "like 29,99"),
        ("١٢", "like 29.99", "like 29,99"),  # Arabic-Indic digits: str.isdigit says yes
        ("²", "like 29.99", "like 29,99"),
        ("9" * 16, "like 29.99", "like 29,99"),
        ("100000.00", 10_000_000, "like 29,99"),
        ("100000.01", "is above the limit LOYALTY_MAX_PURCHASE_AMOUNT = 10000000", "like 29,99"),
    ],
)
def test_the_amount_rules(raw, point, comma) -> None:
    limits = Limits()  # the default ceiling: 10,000,000 minor units
    for decimal_comma, expected in ((False, point), (True, comma)):
        parser = imports.RowParser(
            EUR, earn=False, now=utcnow(), decimal_comma=decimal_comma, limits=limits
        )
        if isinstance(expected, int):
            assert parser.amount(raw) == expected, decimal_comma
        else:
            with pytest.raises(ValueError, match=re.escape(expected)):
                parser.amount(raw)


@pytest.mark.parametrize(
    ("currency", "exponent", "raw", "expected"),
    [
        ("JPY", 0, "1.250", 1250),
        ("JPY", 0, "1250,0", "more decimals than JPY has (0)"),
        ("KWD", 3, "1,234", 1234),
        ("KWD", 3, "1.234,5", 1234500),
        ("KWD", 3, "1,2345", "more decimals than KWD has (3)"),
    ],
)
def test_decimal_commas_are_exact_in_the_programmes_currency(
    currency, exponent, raw, expected
) -> None:
    rates = imports.ProgramRates(currency, exponent, 1, "down")
    parser = imports.RowParser(rates, earn=False, now=utcnow(), decimal_comma=True)
    if isinstance(expected, int):
        assert parser.amount(raw) == expected
    else:
        with pytest.raises(ValueError, match=re.escape(expected)):
            parser.amount(raw)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 1 << 20])
def test_encoding_errors_name_their_line_whatever_the_reading_chunks(monkeypatch, chunk) -> None:
    """A character split between two chunks is no error; a bad byte is on the line it is on,
    line ends being LF, CR LF or CR (a CR LF split between chunks is one end)."""
    monkeypatch.setattr(source, "CHUNK", chunk)
    good = "é;€\r\nü\rñ\n".encode()
    assert imports.detect(io.BytesIO(good)) == imports.Encoding("utf-8", "valid UTF-8 throughout")
    bad = good + "ok\r\nJosé\n".encode("cp1252")  # lines: é;€ / ü / ñ / ok / José
    with pytest.raises(imports.ImportFileError, match=r"^line 5: byte 0xe9 is not UTF-8$"):
        imports.detect(io.BytesIO(bad), "utf-8")
    # UTF-8 and Windows-1252 in one file: the UTF-8 part would turn into mojibake
    with pytest.raises(
        imports.ImportFileError,
        match=r"^line 2: 'ü' is written in UTF-8, but byte 0x80 on line 1 is not UTF-8: the "
        "file mixes encodings",
    ):
        imports.detect(io.BytesIO(b"a;\x80\r\n" + "ü".encode() + b"\rok\nJos\xe9\n\xe9"))
    windows = "é;€\r\nü\rñ\nJosé\n".encode("cp1252")
    found = imports.detect(io.BytesIO(windows))
    assert found == imports.Encoding(
        "cp1252", "byte 0xe9 on line 1 is not UTF-8; --encoding to say otherwise"
    )


def test_a_file_from_standard_input_is_read_the_same_way(app, runner) -> None:
    out = runner.invoke(
        args=["loyalty", "import-purchases", "-", "--decimal-comma"],
        input=DUTCH.encode("cp1252"),
    )
    assert out.exit_code == 0, out.output
    assert "Encoding: Windows-1252" in out.output
    assert imported_rows(app) == DUTCH_ROWS


def test_a_pipe_is_read_into_memory_to_be_read_twice() -> None:
    read, write_end = os.pipe()
    os.write(write_end, b"abc")
    os.close(write_end)
    with open(read, "rb") as pipe:
        assert not pipe.seekable()
        data = imports.seekable(pipe)
        assert data.seekable() and data.read() == b"abc"


def test_a_missing_file_is_a_usage_error(runner, tmp_path) -> None:
    out = run(runner, str(tmp_path / "nope.csv"))
    assert out.exit_code == 2 and type(out.exception) is SystemExit
    assert "No such file or directory" in out.output


def test_an_imported_history_lifts_members_into_their_tier(
    app, runner, client, admin, tmp_path
) -> None:
    program = client.get("/api/v1/program", headers=admin).json
    silver = {"name": "Silver", "qualifying_spend": 10000, "multiplier": 1.5, "benefits": []}
    put = client.put("/api/v1/program", json={**program, "tiers": [silver]}, headers=admin)
    assert put.status_code == 200, put.json
    today = utcnow().date().isoformat()
    history = (
        f"customer_ref,external_id,occurred_at,amount\nbig,t-1,{today},60\nbig,t-2,{today},40\n"
    )
    history += f"small,t-3,{today},99.99\n"
    out = run(runner, write(tmp_path, history))
    assert out.exit_code == 0, out.output
    assert "Tiers: the worker recomputes every member's tier" in out.output
    with app.app_context():
        tiers = dict(db.session.execute(select(Member.external_ref, Member.tier)).all())
        gross = dict(db.session.execute(select(Member.external_ref, Member.gross_spend)).all())
    assert tiers == {"big": "Silver", "small": None}
    assert gross == {"big": 10000, "small": 9999}
