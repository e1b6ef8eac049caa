"""The import's direct path (PostgreSQL): binary COPY straight into purchases and ledger entries
for batches of which nothing is there yet, the staging path (ON CONFLICT) for the rest; both
must give the same books."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from loyalty.domain import imports, ledger
from loyalty.extensions import db
from loyalty.models import LedgerEntry, Member, Purchase

pytestmark = pytest.mark.postgres

HEADER = "customer_ref,external_id,occurred_at,amount\n"


def csv(*rows: str) -> io.StringIO:
    return io.StringIO(HEADER + "".join(r + "\n" for r in rows))


def books() -> tuple[list[tuple], list[tuple]]:
    purchases = db.session.execute(
        select(Member.external_ref, Purchase.external_id, Purchase.points_earned)
        .join(Member, Member.id == Purchase.member_id)
        .order_by(Purchase.external_id)
    ).all()
    balances = db.session.execute(
        select(Member.external_ref, Member.points).order_by(Member.external_ref)
    ).all()
    return [tuple(p) for p in purchases], [tuple(b) for b in balances]


def books_balance() -> bool:
    return ledger.verify(db.session).ok


def test_fresh_batches_go_direct_and_a_rerun_goes_through_staging(app) -> None:
    rows = [f"c{i % 3},d-{i},2026-01-0{1 + i % 9},{10 + i}.00" for i in range(9)]
    with app.app_context():
        first = imports.import_purchases(db.session, csv(*rows), batch_rows=4)
        assert (first.imported, first.batches, first.direct_batches) == (9, 3, 3)
        assert first.members_created == 3
        assert first.points_earned == sum(10 + i for i in range(9))
        assert books_balance()
        before = books()
        again = imports.import_purchases(db.session, csv(*rows), batch_rows=4)
        assert (again.imported, again.duplicates, again.direct_batches) == (0, 9, 0)
        assert books() == before


def test_a_purchase_already_there_inside_a_batch_sends_it_the_staging_way(app) -> None:
    """The batch's first and last rows are new, the middle one is not: the COPY meets the unique
    index, the batch is rolled back and written by the staging path, nothing twice."""
    with app.app_context():
        imports.import_purchases(db.session, csv("c1,x-2,2026-01-01,5.00"))
        out = imports.import_purchases(
            db.session,
            csv(
                "c1,x-1,2026-01-01,1.00",
                "c1,x-2,2026-01-01,5.00",
                "c2,x-3,2026-01-01,3.00",
                "c3,x-4,2026-01-02,7.00",
            ),
            batch_rows=3,
        )
        assert (out.imported, out.duplicates, out.batches, out.direct_batches) == (3, 1, 2, 1)
        assert out.members_created == 2
        assert books() == (
            [("c1", "x-1", 1), ("c1", "x-2", 5), ("c2", "x-3", 3), ("c3", "x-4", 7)],
            [("c1", 6), ("c2", 3), ("c3", 7)],
        )
        assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 4
        assert books_balance()


def test_a_member_whose_ref_changed_under_the_import_is_not_written_to(app) -> None:
    """The direct path's map of refs to ids is checked under the lock: a stale entry (the member
    was given another ref meanwhile) sends the batch the staging way, which finds the ref anew."""
    with app.app_context():
        imports.import_purchases(db.session, csv("old,s-1,2026-01-01,2.00"))
        member = db.session.scalar(select(Member).where(Member.external_ref == "old"))
        member.external_ref = "renamed"
        db.session.commit()
        stale = {"old": member.id}
        result = imports.ImportResult()
        parser = imports.RowParser(imports.get_program(db.session), earn=True, now=imports.utcnow())
        values = {
            "customer_ref": "old",
            "external_id": "s-2",
            "occurred_at": "2026-01-02",
            "amount": "4.00",
        }
        parsed, errors = parser.parse(2, values)
        assert parsed is not None and not errors
        client_id = imports.system_actor(db.session, "import", "(import)").client_id
        written = imports._write_batch_direct(
            db.session,
            [parsed],
            result,
            stale,
            client_id=client_id,
            currency="EUR",
            now=imports.utcnow(),
        )
        db.session.rollback()
        assert written is False and result.imported == 0
        out = imports.import_purchases(db.session, csv("old,s-2,2026-01-02,4.00"))
        assert (out.imported, out.members_created) == (1, 1)
        assert books() == ([("renamed", "s-1", 2), ("old", "s-2", 4)], [("old", 4), ("renamed", 2)])
        assert books_balance()
