"""Pre-printed cards: only numbers in the programme's ranges (LOYALTY_CARD_PREFIXES) are taken
when a card is enrolled or issued with a number; a bank card typed at the till is refused, not
stored, and not repeated in the answer or the logs."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from loyalty.extensions import db
from loyalty.models import Card

BANK_CARD = "4111 1111 1111 1111"  # Luhn-valid, as every payment card is
BANK_DIGITS = BANK_CARD.replace(" ", "")
OWN = "9900000000000002"
PARTNER = "5012340000000005"  # Luhn-valid, in a second range


@pytest.fixture
def card_prefixes(app, monkeypatch):
    """Set LOYALTY_CARD_PREFIXES for one test (the settings are rebuilt from the config)."""

    def configure(value: str | None) -> None:
        monkeypatch.setitem(app.config, "LOYALTY_CARD_PREFIXES", value)
        monkeypatch.delitem(app.extensions, "loyalty_settings", raising=False)

    return configure


def _stored_numbers(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Card.number).order_by(Card.id)))


def test_a_bank_card_is_refused_without_being_echoed_or_stored(
    app, client, pos, admin, caplog
) -> None:
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    caplog.set_level(logging.DEBUG)
    refusals = [
        client.post("/api/v1/members", json={"card_number": BANK_CARD}, headers=pos),
        client.post(
            f"/api/v1/members/{member['id']}/cards", json={"card_number": BANK_CARD}, headers=admin
        ),
    ]
    for r in refusals:
        assert (r.status_code, r.json["code"], list(r.json["errors"])) == (
            422,
            "card_number_out_of_range",
            ["card_number"],
        )
        assert r.headers["Content-Type"] == "application/problem+json"
        assert "990" in r.json["detail"]  # says which numbers are the programme's
        assert BANK_DIGITS not in r.get_data(as_text=True)
    assert BANK_DIGITS not in caplog.text and "4111 1111" not in caplog.text
    assert _stored_numbers(app) == [member["card_number"]]


def test_the_programmes_own_prefix_is_the_default_range(app, client, pos) -> None:
    r = client.post("/api/v1/members", json={"card_number": OWN}, headers=pos)
    assert r.status_code == 201 and r.json["card_number"] == OWN
    r = client.post("/api/v1/members", json={"card_number": PARTNER}, headers=pos)
    assert (r.status_code, r.json["code"]) == (422, "card_number_out_of_range")
    # a mistyped number is still a mistype first
    r = client.post("/api/v1/members", json={"card_number": "9900000000000003"}, headers=pos)
    assert (r.status_code, r.json["code"]) == (422, "invalid_card_number")
    assert _stored_numbers(app) == [OWN]


def test_configured_ranges_are_taken_and_nothing_else(
    app, client, pos, admin, card_prefixes
) -> None:
    card_prefixes("990, 501234")
    first = client.post("/api/v1/members", json={"card_number": PARTNER}, headers=pos)
    assert first.status_code == 201 and first.json["card_number"] == PARTNER
    r = client.post(
        f"/api/v1/members/{first.json['id']}/cards", json={"card_number": OWN}, headers=admin
    )
    assert r.status_code == 201 and r.json["card_number"] == OWN
    r = client.post("/api/v1/members", json={"card_number": BANK_CARD}, headers=pos)
    assert (r.status_code, r.json["code"]) == (422, "card_number_out_of_range")
    assert "990 or 501234" in r.json["detail"]

    card_prefixes("501234")  # the programme's own prefix is not listed: its pre-printed
    r = client.post("/api/v1/members", json={"card_number": "9900000000000010"}, headers=pos)
    assert (r.status_code, r.json["code"]) == (422, "card_number_out_of_range")
    # cards it generates itself still carry LOYALTY_CARD_PREFIX, and are still looked up
    new = client.post("/api/v1/members", json={}, headers=pos).json["card_number"]
    assert new.startswith("990")
    assert client.get(f"/api/v1/cards/{OWN}", headers=pos).status_code == 200
    assert _stored_numbers(app) == [PARTNER, OWN, new]
