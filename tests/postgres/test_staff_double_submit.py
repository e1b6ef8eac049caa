"""A back-office form sent twice at once on PostgreSQL: the second submit of one form (its
nonce) waits for the first and does nothing; two replacements of one card at once replace it
once (the member is locked before the card is read)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from loyalty.domain import members, staff
from loyalty.domain.context import Settings
from loyalty.errors import CardAlreadyBlocked, Conflict
from loyalty.extensions import db
from loyalty.models import Card, StaffAccount
from tests import factories

pytestmark = pytest.mark.postgres


def _race(app, first: Callable[[Any], Any], second: Callable[[Any], Any]) -> dict[str, Any]:
    """`first` runs and holds its transaction open while `second` starts; then `first`
    commits. Returns what each returned, or the error it raised."""
    out: dict[str, Any] = {}
    done, go = threading.Event(), threading.Event()

    def run(name: str, work: Callable[[Any], Any], hold: bool) -> None:
        with app.app_context():
            session = db.session()
            try:
                out[name] = work(session)
                if hold:
                    done.set()
                    go.wait(10)
                session.commit()
            except Exception as exc:  # the outcome under test
                session.rollback()
                out[name] = exc
            finally:
                done.set()

    a = threading.Thread(target=run, args=("a", first, True))
    a.start()
    assert done.wait(10)
    b = threading.Thread(target=run, args=("b", second, False))
    b.start()
    b.join(1)  # b is waiting on a's lock
    assert b.is_alive(), out
    go.set()
    a.join(10)
    b.join(10)
    return out


@pytest.fixture
def account_and_member(app) -> tuple[int, int, str]:
    with app.app_context():
        account = staff.create_staff(
            db.session, f"race-{factories.next_id()}@example.com", "a long enough password", "staff"
        )
        m = factories.member(db.session)
        ids = (account.id, m.id, m.card_number)
        db.session.commit()
    return ids


def test_one_form_sent_twice_at_once_acts_once(app, account_and_member) -> None:
    account_id = account_and_member[0]

    def use(session) -> str:
        staff.use_form_nonce(session, session.get(StaffAccount, account_id), "same-form")
        return "done"

    out = _race(app, use, use)
    assert out["a"] == "done" and isinstance(out["b"], Conflict)


def test_two_replacements_of_one_card_at_once_replace_it_once(app, account_and_member) -> None:
    account_id, member_id, number = account_and_member

    def replace(session) -> str:
        actor = staff.actor_for(session.get(StaffAccount, account_id))
        return members.replace_card(
            session, member_id, number, "lost", settings=Settings(), actor=actor
        ).number

    out = _race(app, replace, replace)
    assert isinstance(out["a"], str) and isinstance(out["b"], CardAlreadyBlocked), out
    with app.app_context():
        cards = db.session.scalar(
            select(func.count()).select_from(Card).where(Card.member_id == member_id)
        )
        assert cards == 2
