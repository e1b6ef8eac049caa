"""Stripe: vouchers mirrored as coupons, and webhooks turned into purchases and returns.

Configured by STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET and STRIPE_API_BASE; without a key Stripe is
off and nothing here is called. A Stripe outage never blocks issuing or redeeming a voucher:
the mirror is written after the voucher's transaction commits, a failure leaves the voucher
`pending` (with `stripe_error`), and `flask loyalty stripe-sync` retries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from loyalty.domain import members, purchases, vouchers
from loyalty.domain.clients import system_actor
from loyalty.domain.context import Actor
from loyalty.domain.sql import upsert
from loyalty.errors import BadRequest, DomainError
from loyalty.models import Member, Purchase, StripeEvent, Voucher
from loyalty.models.types import utcnow

log = logging.getLogger(__name__)

SIGNATURE_TOLERANCE_SECONDS = 300


class InvalidSignature(BadRequest):
    code, title = "invalid_signature", "The Stripe-Signature header does not verify"


@dataclass(frozen=True)
class StripeConfig:
    api_key: str | None
    webhook_secret: str | None
    api_base: str | None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> StripeConfig:
        return cls(
            config.get("STRIPE_API_KEY"),
            config.get("STRIPE_WEBHOOK_SECRET"),
            config.get("STRIPE_API_BASE"),
        )

    @property
    def enabled(self) -> bool:
        return bool(self.api_key)

    def client(self) -> stripe.StripeClient:
        assert self.api_key
        base = {"api": self.api_base} if self.api_base else None
        return stripe.StripeClient(
            self.api_key,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=0,
        )


# the coupon mirror -------------------------------------------------------------------------------
def coupon_params(voucher: Voucher) -> dict[str, Any]:
    params: dict[str, Any] = {
        "id": voucher.display_code,
        "duration": "once",
        "max_redemptions": 1,
        "redeem_by": int(voucher.valid_until.timestamp()),
        "metadata": {
            "loyalty_member_id": str(voucher.member_id),
            "loyalty_voucher_id": str(voucher.id),
        },
    }
    if voucher.discount_type == "amount":
        params.update(amount_off=voucher.value, currency=voucher.currency.lower())
    else:
        params["percent_off"] = voucher.value
    return params


def _create(client: stripe.StripeClient, voucher: Voucher) -> None:
    try:
        client.v1.coupons.create(params=coupon_params(voucher))  # type: ignore[arg-type]
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "code", None) != "resource_already_exists":
            raise  # else: an earlier try created it before we could record that


def _delete(client: stripe.StripeClient, voucher: Voucher) -> None:
    try:
        client.v1.coupons.delete(voucher.display_code)
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "http_status", None) != 404:
            raise  # a coupon that is gone already is what we want


def sync(
    session: Session, config: StripeConfig, ids: Iterable[int] | None = None
) -> dict[str, int]:
    """Bring the coupon mirror in line: create coupons for active vouchers not yet mirrored,
    delete those of used, void or expired ones. Each voucher commits on its own; failures are
    recorded on the voucher, never raised. Returns counts per outcome."""
    counts = {"created": 0, "deleted": 0, "failed": 0}
    if not config.enabled:
        return counts
    client = config.client()
    now = utcnow()
    query = select(Voucher).where(
        or_(Voucher.stripe_status.is_(None), Voucher.stripe_status.in_(("pending", "synced")))
    )
    if ids is not None:
        query = query.where(Voucher.id.in_(list(ids)))
    for voucher in session.scalars(query.order_by(Voucher.id)).all():
        live = voucher.status == "active" and voucher.valid_until > now
        try:
            if live and voucher.stripe_status != "synced":
                _create(client, voucher)
                voucher.stripe_status, voucher.stripe_error = "synced", None
                counts["created"] += 1
            elif not live and voucher.stripe_status == "synced":
                _delete(client, voucher)
                voucher.stripe_status, voucher.stripe_error = "deleted", None
                counts["deleted"] += 1
            else:
                continue  # mirrored already, or never mirrored and no longer live
        except Exception as exc:  # an outage must not break anything: record and retry later
            log.warning("stripe sync of voucher %s failed: %s", voucher.id, exc)
            voucher.stripe_status = "pending" if live else voucher.stripe_status
            voucher.stripe_error = str(exc)[:500]
            counts["failed"] += 1
        session.commit()
    return counts


# webhooks ----------------------------------------------------------------------------------------
def verify(payload: bytes, signature: str | None, config: StripeConfig) -> Mapping[str, Any]:
    """The event, if the signature verifies within the tolerance. Raises InvalidSignature."""
    if not config.webhook_secret or not signature:
        raise InvalidSignature(field="Stripe-Signature")
    try:
        event = stripe.Webhook.construct_event(
            payload, signature, config.webhook_secret, tolerance=SIGNATURE_TOLERANCE_SECONDS
        )
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise InvalidSignature(str(exc)[:200], field="Stripe-Signature") from None
    return event.to_dict()


def stripe_actor(session: Session) -> Actor:
    """The API client webhook purchases and returns are recorded under (no usable key)."""
    return system_actor(session, "stripe", "(webhooks)")


def process(session: Session, event: Mapping[str, Any], config: StripeConfig) -> str:
    """Process an event once (its id is recorded in this transaction). Returns the outcome."""
    inserted = session.execute(
        upsert(session, StripeEvent)
        .values(id=event["id"], type=event.get("type", ""), outcome="", received_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(StripeEvent.id)
    ).scalar()
    if inserted is None:
        return "duplicate"
    handler = HANDLERS.get(event.get("type", ""))
    outcome = handler(session, event["data"]["object"], config) if handler else "ignored"
    record = session.get(StripeEvent, event["id"])
    assert record is not None
    record.outcome = outcome[:200]
    return outcome


def _member_for(session: Session, obj: Mapping[str, Any], config: StripeConfig) -> Member | None:
    metadata = obj.get("metadata") or {}
    try:
        if metadata.get("loyalty_card_number"):
            return members.resolve_member(
                session, card_number=str(metadata["loyalty_card_number"]), for_use=False
            )
        if metadata.get("loyalty_member_id"):
            return members.get_member(session, int(metadata["loyalty_member_id"]))
    except (DomainError, ValueError):
        return None
    customer = obj.get("customer")
    email = None
    if isinstance(customer, Mapping):
        email = customer.get("email")
    elif isinstance(customer, str) and config.enabled:
        try:
            email = config.client().v1.customers.retrieve(customer).email
        except stripe.StripeError as exc:
            log.warning("could not read Stripe customer %s: %s", customer, exc)
    if not email:
        return None
    try:
        normalised = members.normalise_email(email)
    except DomainError:
        return None
    return session.scalar(select(Member).where(Member.email == normalised))


def _voucher_codes(obj: Mapping[str, Any]) -> list[str]:
    codes = [
        c for c in str((obj.get("metadata") or {}).get("loyalty_voucher_codes", "")).split(",") if c
    ]
    for discount in obj.get("discounts") or []:
        coupon = discount.get("coupon") if isinstance(discount, Mapping) else None
        coupon_id = coupon.get("id") if isinstance(coupon, Mapping) else coupon
        if coupon_id:
            codes.append(str(coupon_id))
    return [c for c in codes if vouchers.normalise_code(c)]


def _payment_succeeded(session: Session, obj: Mapping[str, Any], config: StripeConfig) -> str:
    member = _member_for(session, obj, config)
    if member is None:
        log.info("payment %s: no member found; ignored", obj.get("id"))
        return "ignored: no member"
    actor = stripe_actor(session)
    data = {
        "external_id": obj["id"],
        "member_id": member.id,
        "amount": int(obj.get("amount_received") or obj.get("amount") or 0),
        "currency": str(obj.get("currency", "")).upper(),
        "occurred_at": datetime.fromtimestamp(int(obj["created"]), UTC)
        if obj.get("created")
        else None,
    }
    try:
        receipt, created = purchases.record_purchase(session, data, actor=actor)
    except DomainError as exc:
        log.warning("payment %s refused: %s", obj.get("id"), exc.code)
        return f"rejected: {exc.code}"
    used = []
    for code in _voucher_codes(obj):
        try:
            vouchers.redeem(
                session,
                code,
                {"order_ref": obj["id"], "amount": data["amount"], "currency": data["currency"]},
                actor=actor,
                purchase_id=receipt.id,
            )
            used.append(code)
        except DomainError as exc:
            log.info("voucher %s on payment %s not marked used: %s", code, obj.get("id"), exc.code)
    outcome = f"purchase {receipt.id} {'created' if created else 'exists'}"
    return outcome + (f", vouchers used: {','.join(used)}" if used else "")


def _charge_refunded(session: Session, obj: Mapping[str, Any], config: StripeConfig) -> str:
    actor = stripe_actor(session)
    purchase = session.scalar(
        select(Purchase).where(
            Purchase.api_client_id == actor.client_id,
            Purchase.external_id == str(obj.get("payment_intent") or ""),
        )
    )
    if purchase is None:
        return "ignored: no purchase for this payment"
    refunds = ((obj.get("refunds") or {}).get("data")) or []
    if not refunds and obj.get("amount_refunded"):
        # no refund list: return what is newly refunded under an id made of the running total
        new = int(obj["amount_refunded"]) - purchase.returned_amount
        refunds = (
            [{"id": f"{obj['id']}:{obj['amount_refunded']}", "amount": new}] if new > 0 else []
        )
    outcomes = []
    for refund in refunds:
        try:
            ret, created = purchases.record_return(
                session,
                purchase.id,
                {"external_id": str(refund["id"]), "amount": int(refund["amount"])},
                actor=actor,
            )
            outcomes.append(f"return {ret.id} {'created' if created else 'exists'}")
        except DomainError as exc:
            outcomes.append(f"refund {refund.get('id')} rejected: {exc.code}")
    return "; ".join(outcomes) or "ignored: nothing refunded"


HANDLERS = {
    "payment_intent.succeeded": _payment_succeeded,
    "charge.refunded": _charge_refunded,
}
