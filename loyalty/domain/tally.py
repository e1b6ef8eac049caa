"""What a transaction did that the service's metrics count (purchases recorded, points issued,
redeemed, expired), noted on its session as plain numbers.

The domain only notes; `loyalty.observability` adds the notes to its Prometheus counters after
the transaction commits and forgets them when it rolls back, so a refused or rolled-back request
counts nothing. No Flask and no metrics library here (the domain layer stays plain Python).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

#: the key in `Session.info`
KEY = "loyalty.tally"

PURCHASES_RECORDED = "purchases_recorded"
POINTS_ISSUED = "points_issued"
POINTS_REDEEMED = "points_redeemed"
POINTS_EXPIRED = "points_expired"

#: what a ledger entry of this kind adds to, by its points' sign (positive for these kinds)
_BY_ENTRY_KIND = {"earn": POINTS_ISSUED, "bonus": POINTS_ISSUED}
_BY_SPENDING_KIND = {"redeem": POINTS_REDEEMED, "expire": POINTS_EXPIRED}


def note(session: Session, name: str, amount: int = 1) -> None:
    """Add `amount` to `name` in the open transaction's tally."""
    tally = session.info.setdefault(KEY, {})
    tally[name] = tally.get(name, 0) + amount


def note_entry(session: Session, kind: str, points: int) -> None:
    """A ledger entry of `kind` moving `points` (signed): points earned count as issued, a
    redemption's and an expiry's (negative) as redeemed and expired; other kinds count nothing."""
    if kind in _BY_ENTRY_KIND and points > 0:
        note(session, _BY_ENTRY_KIND[kind], points)
    elif kind in _BY_SPENDING_KIND and points < 0:
        note(session, _BY_SPENDING_KIND[kind], -points)


def take(session: Session) -> dict[str, int]:
    """The tally of the transaction that just ended, removed from the session."""
    tally: dict[str, int] = session.info.pop(KEY, None) or {}
    return tally
