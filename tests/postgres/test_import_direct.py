"""The import's direct path (PostgreSQL): binary COPY straight into purchases and ledger entries
for batches of which nothing is there yet, the foreign-key triggers skipped and their checks
proven by the path itself; the staging path (ON CONFLICT) for the rest; both must give the same
books. The caller (the CLI's `run_import`) owns every transaction."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from sqlalchemy import func, select, text

from loyalty.cli import run_import
from loyalty.domain import imports, ledger
from loyalty.domain.imports import write
from loyalty.extensions import db
from loyalty.models import LedgerEntry, Member, Purchase
from loyalty.models.types import utcnow

pytestmark = pytest.mark.postgres

HEADER = "customer_ref,external_id,occurred_at,amount\n"
MISSING = 10**12  # an id no row has


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


def counts() -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        db.session.scalar(select(func.count()).select_from(model))
        for model in (Member, Purchase, LedgerEntry)
    )


def books_balance() -> bool:
    return ledger.verify(db.session).ok


def parsed(*rows: str) -> list[imports.Row]:
    """The rows as the import's parser makes them (programme: EUR, 1 point per unit)."""
    program = imports.ProgramRates("EUR", 2, 1, "down")
    parser = imports.RowParser(program, earn=True, now=utcnow())
    out = []
    for line, values in imports.CsvRows(csv(*rows)):
        row, errors = parser.parse(line, values)
        assert row is not None, errors
        out.append(row)
    return out


def test_fresh_batches_go_direct_and_a_rerun_goes_through_staging(app) -> None:
    rows = [f"c{i % 3},d-{i},2026-01-0{1 + i % 9},{10 + i}.00" for i in range(9)]
    with app.app_context():
        first = run_import(db.session, csv(*rows), batch_rows=4)
        assert (first.imported, first.batches, first.direct_batches) == (9, 3, 3)
        assert first.members_created == 3 and first.row_triggers_skipped
        assert first.points_earned == sum(10 + i for i in range(9))
        assert books_balance()
        before = books()
        again = run_import(db.session, csv(*rows), batch_rows=4)
        assert (again.imported, again.duplicates, again.direct_batches) == (0, 9, 0)
        assert books() == before


def test_a_batch_is_written_in_the_callers_transaction_and_the_trigger_setting_put_back(
    app,
) -> None:
    """write_batch commits nothing: the caller's rollback leaves no trace. Within the
    transaction the foreign-key triggers are on again once the direct path is done."""
    with app.app_context():
        target = imports.prepare(db.session, currency="EUR", now=utcnow())
        db.session.commit()
        written = imports.write_batch(db.session, parsed("c1,t-1,2026-01-01,3.00"), target)
        assert (written.direct, written.row_triggers_skipped, written.imported) == (True, True, 1)
        assert db.session.scalar(text("SHOW session_replication_role")) == "origin"
        assert counts() == (1, 1, 1)
        db.session.rollback()
        assert counts() == (0, 0, 0)


def test_a_role_that_may_not_skip_the_triggers_writes_the_direct_way_with_them(app) -> None:
    """The role, created in the transaction and gone with its rollback, is no superuser."""
    with app.app_context():
        target = imports.prepare(db.session, currency="EUR", now=utcnow())
        db.session.commit()
        for statement in [
            "CREATE ROLE loyalty_import_test NOSUPERUSER",
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO loyalty_import_test",
            "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO loyalty_import_test",
            "SET LOCAL ROLE loyalty_import_test",
        ]:
            db.session.execute(text(statement))
        written = imports.write_batch(db.session, parsed("c1,r-1,2026-01-01,3.00"), target)
        assert (written.direct, written.row_triggers_skipped, written.points_earned) == (
            True,
            False,
            3,
        )
        assert counts() == (1, 1, 1)
        db.session.rollback()


def test_the_import_leaves_the_interpreters_switch_interval_alone(app, monkeypatch) -> None:
    seen: list[float] = []
    real = imports.write_batch

    def spy(*args: Any, **kwargs: Any) -> imports.Written:
        seen.append(sys.getswitchinterval())
        return real(*args, **kwargs)

    monkeypatch.setattr(imports, "write_batch", spy)
    before = sys.getswitchinterval()
    with app.app_context():
        result = run_import(
            db.session, csv("c1,w-1,2026-01-01,1", "c2,w-2,2026-01-01,2"), batch_rows=1
        )
    assert result.imported == 2
    assert seen == [before, before] and sys.getswitchinterval() == before


def _spy_role(monkeypatch, roles: list[str]) -> None:
    """Records the trigger setting at the proof of each batch's purchases."""
    real = write._prove_purchase_references

    def spy(cur: Any, *args: Any) -> set[int]:
        cur.execute("SHOW session_replication_role")
        roles.append(cur.fetchone()[0])
        return real(cur, *args)

    monkeypatch.setattr(write, "_prove_purchase_references", spy)


def test_a_purchase_naming_a_missing_member_is_refused_on_the_direct_path(app, monkeypatch) -> None:
    """The member-id resolution is made to give a member that does not exist: with the
    triggers skipped, the proof after the COPY refuses the batch, and nothing of it stays."""
    real = write._member_ids

    def broken(cur: Any, refs: list[str], *args: Any) -> tuple[dict, dict]:
        known, created = real(cur, refs, *args)
        return {**known, "c2": MISSING}, created

    monkeypatch.setattr(write, "_member_ids", broken)
    roles: list[str] = []
    _spy_role(monkeypatch, roles)
    with app.app_context():
        with pytest.raises(imports.ImportReferenceError, match="1 of the 2 members"):
            run_import(db.session, csv("c1,m-1,2026-01-01,5.00", "c2,m-2,2026-01-01,0"))
        assert roles == ["replica"]  # the triggers were off: only the proof stood in the way
        assert counts() == (0, 0, 0)
        assert books_balance()


def test_a_ledger_entry_naming_a_missing_purchase_is_refused_on_the_direct_path(
    app, monkeypatch
) -> None:
    real = write._copy_purchases

    def broken(*args: Any) -> tuple[int, list[tuple[int, int, int]]]:
        copied, earnings = real(*args)
        member_id, _, points = earnings[0]
        return copied, [(member_id, MISSING, points), *earnings[1:]]

    monkeypatch.setattr(write, "_copy_purchases", broken)
    roles: list[str] = []
    _spy_role(monkeypatch, roles)
    with app.app_context():
        with pytest.raises(imports.ImportReferenceError, match="1 ledger entries would name"):
            run_import(db.session, csv("c1,e-1,2026-01-01,5.00", "c1,e-2,2026-01-02,7.00"))
        assert roles == ["replica"]
        assert counts() == (0, 0, 0)


def test_a_refused_batch_keeps_the_batches_committed_before_it(app, monkeypatch) -> None:
    real = write._member_ids
    calls = 0

    def broken_second_time(cur: Any, refs: list[str], *args: Any) -> tuple[dict, dict]:
        nonlocal calls
        calls += 1
        known, created = real(cur, refs, *args)
        return ({ref: MISSING for ref in known} if calls == 2 else known), created

    monkeypatch.setattr(write, "_member_ids", broken_second_time)
    with app.app_context():
        with pytest.raises(imports.ImportReferenceError):
            run_import(db.session, csv("a,k-1,2026-01-01,1", "b,k-2,2026-01-01,2"), batch_rows=1)
        assert books() == ([("a", "k-1", 1)], [("a", 1)])
        assert books_balance()


def test_a_purchase_already_there_inside_a_batch_sends_it_the_staging_way(app) -> None:
    """The batch's first and last rows are new, the middle one is not: the COPY meets the unique
    index, the batch's savepoint is rolled back and the staging path writes it, nothing twice."""
    with app.app_context():
        run_import(db.session, csv("c1,x-2,2026-01-01,5.00"))
        out = run_import(
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
        run_import(db.session, csv("old,s-1,2026-01-01,2.00"))
        member = db.session.scalar(select(Member).where(Member.external_ref == "old"))
        assert member is not None
        target = imports.prepare(db.session, currency="EUR", now=utcnow())
        target.members["old"] = member.id
        member.external_ref = "renamed"
        db.session.commit()
        written = imports.write_batch(db.session, parsed("old,s-2,2026-01-02,4.00"), target)
        db.session.commit()
        assert (written.direct, written.imported, written.members_created) == (False, 1, 1)
        assert books() == ([("renamed", "s-1", 2), ("old", "s-2", 4)], [("old", 4), ("renamed", 2)])
        assert books_balance()
