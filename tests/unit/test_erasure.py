"""Erasure at the domain level: the ledger's one allowed change, the JSON redaction, and the
member an Idempotency-Key record is stored with."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from loyalty.domain import erasure, idempotency, members, purchases
from loyalty.domain.context import Actor, Limits
from loyalty.models import Card, IdempotencyRecord, LedgerEntry
from tests import factories


def _adjusted(session, till, note: str = "called Ann Smith"):
    m = factories.member(session, name="Ann Smith", email="ann@example.com")
    entry = purchases.adjust(session, m.id, 50, note, actor=till, limits=Limits())
    session.commit()
    return m, entry


def test_the_ledger_lets_only_the_redaction_of_a_note_through(session, till) -> None:
    _adjusted(session, till)
    refused = [
        "UPDATE ledger_entries SET note = 'something else'",
        "UPDATE ledger_entries SET note = NULL",
        "UPDATE ledger_entries SET note = '[redacted]', points = 5000",
        "UPDATE ledger_entries SET note = '[redacted]', balance_after = 7",
        "UPDATE ledger_entries SET note = '[redacted]', actor = 'someone'",
        "UPDATE ledger_entries SET points = 5000",
        "DELETE FROM ledger_entries",
    ]
    for sql in refused:
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text(sql))
        session.rollback()
    session.execute(text("UPDATE ledger_entries SET note = '[redacted]'"))
    session.commit()
    row = session.execute(select(LedgerEntry.note, LedgerEntry.points, LedgerEntry.balance_after))
    assert row.one() == ("[redacted]", 50, 50)


def test_erasing_redacts_the_members_notes_and_leaves_the_books(session, till) -> None:
    m, _ = _adjusted(session, till)
    members.erase_member(session, m, actor=Actor.cli())
    session.commit()
    session.expire_all()
    assert session.scalars(select(LedgerEntry.note)).all() == [erasure.REDACTED]
    assert session.scalar(select(func.sum(LedgerEntry.points))) == 50 == m.points
    assert [(c.status, c.block_reason) for c in session.scalars(select(Card))] == [
        ("blocked", erasure.ERASED)
    ]


def test_redact_json_nulls_personal_fields_and_redacts_free_text() -> None:
    personal = ["Ann Smith", "ann@example.com", "+31612345678"]
    document = {
        "id": 7,
        "name": "Ann Smith",
        "email": "ann@example.com",
        "phone": "+31612345678",
        "marketing_consent": True,
        "cards": [{"card_number": "9900000000000002", "status": "active"}],
        "entry": {"reason": "staff_adjustment", "note": "no personal data here"},
        "voucher": {"reason": "Complaint by ANN@example.com", "kind": "goodwill"},
        "benefit": {"name": "Coffee"},
        "detail": "ask for ann smith",
    }
    assert erasure.redact_json(document, personal, codes_kept=True) == {
        "id": 7,
        "name": None,
        "email": None,
        "phone": None,
        "marketing_consent": False,
        "cards": [{"card_number": "9900000000000002", "status": "active"}],
        "entry": {"reason": "staff_adjustment", "note": erasure.REDACTED},
        "voucher": {"reason": erasure.REDACTED, "kind": "goodwill"},
        "benefit": {"name": "Coffee"},
        "detail": erasure.REDACTED,
    }
    # audit details: every reason is free text
    assert erasure.redact_json({"reason": "lost", "points": 5}, []) == {
        "reason": erasure.REDACTED,
        "points": 5,
    }


def test_a_record_is_stored_with_the_one_member_its_transaction_wrote(session, till) -> None:
    client_id = till.client_id
    m = factories.member(session)
    idempotency.store(session, client_id, "one", "h1", 201, json.dumps({"id": m.id}))
    session.commit()
    a, b = factories.member(session), factories.member(session)
    idempotency.store(session, client_id, "two", "h2", 201, "{}")  # two members: no one
    session.commit()
    idempotency.store(session, client_id, "none", "h3", 201, "{}")  # nothing written
    session.commit()
    tags = dict(session.execute(select(IdempotencyRecord.key, IdempotencyRecord.member_id)).all())
    assert tags == {"one": m.id, "two": None, "none": None}
    assert a.id != b.id
