"""Feedback after a purchase (NPS, CES, CSAT, a comment) and the figures of metrics.md.

A purchase's `feedback_token` is a signature of its id (itsdangerous, HMAC with the app's secret):
the same token every time the purchase is shown, valid for FEEDBACK_TOKEN_DAYS after the purchase
was recorded, usable once (one feedback record per purchase, enforced by a UNIQUE index).
"""

from __future__ import annotations

import functools
from datetime import date, timedelta
from typing import Any

from itsdangerous import BadSignature, Signer, URLSafeSerializer
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from loyalty.domain.context import Actor
from loyalty.domain.members import refuse_erased, resolve_member
from loyalty.domain.metrics import midnight, ratio
from loyalty.errors import FeedbackExists, FeedbackTokenExpired, MemberMismatch, NotFound
from loyalty.models import Feedback, Purchase
from loyalty.models.types import utcnow

FEEDBACK_TOKEN_DAYS = 14
_SALT = "loyalty.feedback"
SCORES = ("nps", "ces", "csat", "comment")


@functools.lru_cache(maxsize=4)
def _signer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_SALT)


@functools.lru_cache(maxsize=4)
def _key_signer(secret: str) -> Signer:
    return _signer(secret).make_signer()


@functools.lru_cache(maxsize=1024)
def token_for(purchase_id: int, secret: str) -> str:
    """The purchase's feedback token (deterministic: a replayed response shows the same one).

    URLSafeSerializer(secret, salt).dumps(purchase_id), with its signer made once (every
    purchase response carries a token, and its feedback URL the same token again: the last
    tokens made are kept, so the response signs once; half the cost of its answer)."""
    payload = _signer(secret).dump_payload(purchase_id)
    return _key_signer(secret).sign(payload).decode("ascii")


def link_for(purchase_id: int, secret: str, public_url: str) -> str:
    """The customer's feedback page for a purchase: `{public_url}/f/{token}`."""
    return f"{public_url}/f/{token_for(purchase_id, secret)}"


def link_of_purchase(session: Session, purchase_id: int, secret: str, public_url: str) -> str:
    """link_for an existing purchase. Raises NotFound."""
    if session.get(Purchase, purchase_id) is None:
        raise NotFound(f"No purchase {purchase_id}.", field="purchase_id")
    return link_for(purchase_id, secret, public_url)


def purchase_for_token(session: Session, token: str, secret: str) -> Purchase:
    """The purchase a token names. Raises NotFound (bad signature), FeedbackTokenExpired."""
    try:
        purchase_id = _signer(secret).loads(token)
    except BadSignature:
        raise NotFound("No such feedback link.", field="token") from None
    if not isinstance(purchase_id, int) or not 0 < purchase_id < 2**63:
        raise NotFound("No such feedback link.", field="token")
    purchase = session.get(Purchase, purchase_id)
    if purchase is None:
        raise NotFound("No such feedback link.", field="token")
    if utcnow() >= purchase.created_at + timedelta(days=FEEDBACK_TOKEN_DAYS):
        raise FeedbackTokenExpired(
            f"Feedback links are valid for {FEEDBACK_TOKEN_DAYS} days after the purchase.",
            field="token",
        )
    return purchase


def feedback_on(session: Session, purchase_id: int) -> Feedback | None:
    """The feedback given about a purchase, if any (there is one at most)."""
    return session.scalar(select(Feedback).where(Feedback.purchase_id == purchase_id))


def _record(
    session: Session,
    member_id: int,
    purchase_id: int | None,
    data: dict[str, Any],
    *,
    channel: str,
    actor: Actor | None,
) -> Feedback:
    if purchase_id is not None and session.scalar(
        select(Feedback.id).where(Feedback.purchase_id == purchase_id)
    ):
        raise FeedbackExists(f"Purchase {purchase_id} has feedback already.", field="purchase_id")
    feedback = Feedback(
        member_id=member_id,
        purchase_id=purchase_id,
        channel=channel,
        api_client_id=actor.client_id if actor else None,
        **{k: data.get(k) for k in SCORES},
    )
    session.add(feedback)
    session.flush()  # a concurrent twin loses on the UNIQUE index → 409 feedback_exists
    return feedback


def give_feedback(session: Session, data: dict[str, Any], *, actor: Actor) -> Feedback:
    """Feedback from a till, webshop or staff for the member the body names, optionally about
    one of their purchases. Raises what resolve_member raises, NotFound (purchase),
    MemberMismatch (another member's purchase), FeedbackExists."""
    member = resolve_member(
        session, card_number=data.get("card_number"), member_id=data.get("member_id")
    )
    purchase_id = data.get("purchase_id")
    if purchase_id is not None:
        purchase = session.get(Purchase, purchase_id)
        if purchase is None:
            raise NotFound(f"No purchase {purchase_id}.", field="purchase_id")
        if purchase.member_id != member.id:
            raise MemberMismatch("The purchase is another member's.", field="purchase_id")
    return _record(session, member.id, purchase_id, data, channel="api", actor=actor)


def give_feedback_by_token(
    session: Session, token: str, data: dict[str, Any], *, secret: str
) -> Feedback:
    """The customer's own feedback through the link printed on the receipt (no API key).
    Raises NotFound, FeedbackTokenExpired, MemberErased (nothing new is kept about an erased
    member), FeedbackExists."""
    purchase = purchase_for_token(session, token, secret)
    refuse_erased(purchase.member.erased_at, field="token")
    return _record(session, purchase.member_id, purchase.id, data, channel="token", actor=None)


def metrics(session: Session, start: date, end: date) -> dict[str, Any]:
    """NPS, CES and CSAT over the feedback given in [start, end] (metrics.md, "Feedback")."""
    begin, stop = midnight(start), midnight(end + timedelta(days=1))
    f = Feedback
    row = session.execute(
        select(
            func.count(),
            func.count(f.nps),
            func.coalesce(func.sum(case((f.nps >= 9, 1), else_=0)), 0),
            func.coalesce(func.sum(case((f.nps <= 6, 1), else_=0)), 0),
            func.count(f.ces),
            func.coalesce(func.sum(f.ces), 0),
            func.count(f.csat),
            func.coalesce(func.sum(case((f.csat >= 4, 1), else_=0)), 0),
        ).where(f.created_at >= begin, f.created_at < stop)
    ).one()
    total, n_nps, promoters, detractors, n_ces, ces_sum, n_csat, satisfied = (int(v) for v in row)
    return {
        "start": start,
        "end": end,
        "nps": ratio(100 * (promoters - detractors), n_nps, 1),
        "ces_average": ratio(ces_sum, n_ces, 2),
        "csat": ratio(100 * satisfied, n_csat, 1),
        "responses": {"total": total, "nps": n_nps, "ces": n_ces, "csat": n_csat},
        "promoters": promoters,
        "passives": n_nps - promoters - detractors,
        "detractors": detractors,
        "definitions": "docs/metrics.md",
    }
