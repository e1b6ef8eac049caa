"""Member rules: normalisation, uniqueness, erasure, cards."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from loyalty.domain import members
from loyalty.domain.context import Actor, Settings
from loyalty.errors import (
    CardAlreadyBlocked,
    CardBlocked,
    CardInUse,
    EmailTaken,
    MemberErased,
    MemberMismatch,
    NotFound,
    PhoneTaken,
    ValidationFailed,
)
from loyalty.models import AuditEntry
from tests import factories

CLI = Actor.cli()
NL = Settings(phone_region="NL")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Ann@Example.COM ", "ann@example.com"),
        ("a.b+tag@sub.example.org", "a.b+tag@sub.example.org"),
        ("", None),
        (None, None),
    ],
)
def test_email_is_trimmed_and_lower_cased(raw: str | None, expected: str | None) -> None:
    assert members.normalise_email(raw) == expected


@pytest.mark.parametrize("raw", ["not-an-email", "a@b", "ann@@example.com", "ann example@x.com"])
def test_bad_email_is_a_validation_error_on_the_email_field(raw: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        members.normalise_email(raw)
    assert "email" in err.value.errors


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+31 6 1234 5678", None, "+31612345678"),
        ("06-12345678", "NL", "+31612345678"),
        ("(202) 555-0143", "US", "+12025550143"),
    ],
)
def test_phone_is_stored_in_e164(raw: str, region: str | None, expected: str) -> None:
    assert members.normalise_phone(raw, region) == expected


@pytest.mark.parametrize(("raw", "region"), [("06-12345678", None), ("+31 1", None), ("abc", "NL")])
def test_bad_phone_is_a_validation_error_on_the_phone_field(raw: str, region: str | None) -> None:
    with pytest.raises(ValidationFailed) as err:
        members.normalise_phone(raw, region)
    assert "phone" in err.value.errors


def test_enrol_gives_a_first_card_and_a_zero_balance(session) -> None:
    m = factories.member(session, email="Ann@Example.com")
    assert m.email == "ann@example.com"
    assert len(m.cards) == 1 and m.cards[0].status == "active"
    assert m.card_number == m.cards[0].number
    assert m.balance == {"points": 0, "held": 0, "pending": 0, "available": 0}


def test_enrol_activates_a_pre_printed_card(session) -> None:
    m = factories.member(session, card_number="9900 0000 0000 0002")
    assert m.card_number == "9900000000000002"


def test_duplicate_email_and_phone_are_refused_whatever_their_spelling(session) -> None:
    factories.member(session, email="ann@example.com", phone="+31612345678")
    with pytest.raises(EmailTaken):
        factories.member(session, email=" ANN@example.com")
    with pytest.raises(PhoneTaken):
        members.enrol(session, {"phone": "06 1234 5678"}, settings=NL, actor=CLI)


def test_a_card_in_use_cannot_be_activated_again(session) -> None:
    factories.member(session, card_number="9900000000000002")
    with pytest.raises(CardInUse):
        factories.member(session, card_number="9900000000000002")


def test_blocking_a_card_is_terminal_and_audited(session) -> None:
    m = factories.member(session)
    number = m.card_number
    card = members.block_card(session, number, "lost", actor=CLI)
    assert card.status == "blocked" and card.block_reason == "lost"
    assert m.card_number is None  # no active card left
    with pytest.raises(CardAlreadyBlocked):
        members.block_card(session, number, None, actor=CLI)
    with pytest.raises(CardBlocked):
        members.resolve_member(session, card_number=number)
    assert members.resolve_member(session, card_number=number, for_use=False) is m
    actions = session.scalars(select(AuditEntry.action)).all()
    assert "card.block" in actions


def test_a_replacement_card_keeps_the_member_and_the_blocked_number_stays_blocked(session) -> None:
    m = factories.member(session)
    old = m.card_number
    members.block_card(session, old, "stolen", actor=CLI)
    new = members.issue_card(session, m, None, settings=Settings(), actor=CLI)
    assert m.card_number == new.number != old
    with pytest.raises(CardBlocked):
        factories.member(session, card_number=old)


def test_resolve_member_by_card_or_id_and_refuses_disagreement(session) -> None:
    a = factories.member(session)
    b = factories.member(session)
    assert members.resolve_member(session, card_number=a.card_number, member_id=a.id) is a
    with pytest.raises(MemberMismatch):
        members.resolve_member(session, card_number=a.card_number, member_id=b.id)
    with pytest.raises(NotFound):
        members.resolve_member(session, member_id=b.id + 1000)
    with pytest.raises(ValidationFailed):
        members.resolve_member(session)


def test_erasure_clears_personal_data_blocks_cards_and_is_idempotent(session) -> None:
    m = factories.member(
        session, phone="+31612345678", external_ref="crm-1", marketing_consent=True
    )
    card = m.card_number
    members.erase_member(session, m, actor=CLI)
    assert (m.name, m.email, m.phone, m.external_ref, m.marketing_consent) == (
        None,
        None,
        None,
        None,
        False,
    )
    assert m.erased_at is not None and m.card_number is None
    assert [(c.number, c.status, c.block_reason) for c in m.cards] == [
        (card, "blocked", "member_erased")
    ]
    first = m.erased_at
    members.erase_member(session, m, actor=CLI)
    assert m.erased_at == first
    with pytest.raises(MemberErased):
        members.update_member(session, m, {"name": "x"}, settings=Settings(), actor=CLI)
    # the e-mail is free again for a new enrolment
    factories.member(session, email=f"member-erased-{m.id}@example.com")


def test_update_changes_only_given_fields_and_audits_the_field_names(session) -> None:
    m = factories.member(session, name="Ann", email="ann@example.com")
    members.update_member(
        session, m, {"email": "ANN2@example.com", "name": "Ann"}, settings=Settings(), actor=CLI
    )
    assert m.email == "ann2@example.com" and m.name == "Ann"
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "member.update")).one()
    assert entry.detail == {
        "fields": ["email"],
        "changes": {"email": ["ann@example.com", "ann2@example.com"]},
    }


def test_search_filters_and_orders_newest_first(session) -> None:
    a = factories.member(session, name="Ann Smith", email="ann@example.com")
    b = factories.member(session, name="Annie Jones", email="annie@example.com")
    factories.member(session, name="Bob", email="bob@example.com")
    items, total = members.search_members(session, q="ann", settings=Settings(), offset=0, limit=10)
    assert total == 2 and [m.id for m in items] == [b.id, a.id]
    items, total = members.search_members(
        session, card_number=a.card_number, settings=Settings(), offset=0, limit=10
    )
    assert [m.id for m in items] == [a.id]
    items, total = members.search_members(
        session, q="100%", settings=Settings(), offset=0, limit=10
    )
    assert total == 0  # % is matched literally, not as a wildcard
