"""An import and the tills at once, on PostgreSQL with real parallel connections: the import locks
each batch's members in id order and computes balance_after under that lock, so live purchases for
the same members interleave without a lost update, a broken chain or a deadlock."""

from __future__ import annotations

import threading

import pytest

from loyalty.cli import run_import
from loyalty.extensions import db, write_transaction
from tests.factories import run_parallel, verify_ledger

pytestmark = pytest.mark.postgres

MEMBERS = 10
IMPORTED = 2000  # 200 per member, 10 points each
LIVE = 200  # 20 per member, 5 points each


def test_an_import_and_live_purchases_for_the_same_members_add_up(app, client, runner, pos) -> None:
    ids = [
        client.post("/api/v1/members", json={"external_ref": f"m{i}"}, headers=pos).json["id"]
        for i in range(MEMBERS)
    ]
    lines = ["customer_ref,external_id,occurred_at,amount\n"] + [
        f"m{i % MEMBERS},imp-{i},2026-01-01T10:00:00Z,10.00\n" for i in range(IMPORTED)
    ]
    outcome: dict = {}

    def do_import() -> None:
        with app.app_context():
            token = write_transaction.set(True)
            try:
                outcome["result"] = run_import(db.session(), lines, batch_rows=100)
            except BaseException as exc:  # reported below
                outcome["error"] = exc
            finally:
                write_transaction.reset(token)

    importer = threading.Thread(target=do_import)
    importer.start()
    statuses = run_parallel(
        app,
        LIVE,
        lambda c, i: (
            c.post(
                "/api/v1/purchases",
                json={
                    "external_id": f"live-{i}",
                    "member_id": ids[i % MEMBERS],
                    "amount": 500,
                    "currency": "EUR",
                },
                headers=pos,
            ).status_code
        ),
    )
    importer.join(timeout=120)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert (result.imported, result.batches, result.error_count) == (IMPORTED, 20, 0)
    assert statuses == [201] * LIVE
    for member_id in ids:
        balance = client.get(f"/api/v1/members/{member_id}", headers=pos).json["balance"]
        assert balance["points"] == 200 * 10 + 20 * 5, member_id
    verify_ledger(runner)
