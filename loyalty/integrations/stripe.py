"""Stripe: vouchers mirrored as coupons, and webhooks turned into purchases and returns.

Configured by STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET and STRIPE_API_BASE; without a key Stripe is
off and nothing here is called. Every call has a timeout (STRIPE_TIMEOUT_SECONDS) and at most
STRIPE_MAX_NETWORK_RETRIES network retries.

The coupon mirror never runs inside a request: the transaction that issues, uses or voids a
voucher marks it `pending`, a background job (`mirror`) then creates or deletes its coupon and
marks it `synced` or `deleted`; a failure leaves it `pending` with `stripe_error`. The periodic
sweep (`claim_due`) hands the job again whatever stayed pending, and the coupons of expired
vouchers. A coupon call happens outside any database transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalty.domain import members, purchases, vouchers
from loyalty.domain.clients import system_actor
from loyalty.domain.context import Actor
from loyalty.domain.sql import upsert
from loyalty.errors import DomainError, InvalidSignature
from loyalty.models import Member, Purchase, StripeEvent, Voucher
from loyalty.models.types import utcnow

log = logging.getLogger(__name__)

SIGNATURE_TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class StripeConfig:
    api_key: str | None
    webhook_secret: str | None
    api_base: str | None
    timeout_seconds: float = 10.0
    max_network_retries: int = 1

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> StripeConfig:
        return cls(
            config.get("STRIPE_API_KEY"),
            config.get("STRIPE_WEBHOOK_SECRET"),
            config.get("STRIPE_API_BASE"),
            float(config.get("STRIPE_TIMEOUT_SECONDS", 10.0)),
            int(config.get("STRIPE_MAX_NETWORK_RETRIES", 1)),
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
            max_network_retries=self.max_network_retries,
            http_client=stripe.RequestsClient(timeout=self.timeout_seconds),
        )


# the coupon mirror -------------------------------------------------------------------------------
#: vouchers per mirror job, and per pass of the sweep
MIRROR_BATCH = 100
SWEEP_LIMIT = 1000


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


def _create(client: stripe.StripeClient, params: dict[str, Any]) -> None:
    try:
        client.v1.coupons.create(params=params)  # type: ignore[arg-type]
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "code", None) != "resource_already_exists":
            raise  # else: an earlier try created it before we could record that


def _delete(client: stripe.StripeClient, coupon_id: str) -> None:
    try:
        client.v1.coupons.delete(coupon_id)
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "http_status", None) != 404:
            raise  # a coupon that is gone already is what we want


@dataclass(frozen=True)
class _Call:
    """What to do with one voucher's coupon, read before the call (no transaction stays open)."""

    voucher_id: int
    seen_status: str
    coupon_id: str
    create: dict[str, Any] | None  # the coupon's params; None: delete it


def _call_for(voucher: Voucher, now: datetime) -> _Call | None:
    live = voucher.status == "active" and voucher.valid_until > now
    if live and voucher.stripe_status in (None, "pending"):
        params: dict[str, Any] | None = coupon_params(voucher)
    elif not live and voucher.stripe_status in ("pending", "synced"):
        params = None
    else:
        return None  # mirrored already, or never mirrored and no longer live
    return _Call(voucher.id, voucher.status, voucher.display_code, params)


def _record(session: Session, call: _Call, stripe_status: str, error: str | None) -> None:
    """Commit the outcome if the voucher is still as the call saw it; if it changed meanwhile
    (used or voided during the call), mark it pending again for the sweep to follow up."""
    now = utcnow()
    done = session.execute(
        update(Voucher)
        .where(Voucher.id == call.voucher_id, Voucher.status == call.seen_status)
        .values(stripe_status=stripe_status, stripe_error=error, stripe_updated_at=now)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.execute(
            update(Voucher)
            .where(Voucher.id == call.voucher_id)
            .values(stripe_status="pending", stripe_updated_at=now)
        )
    session.commit()


def _mirror_one(session: Session, client: stripe.StripeClient, voucher_id: int) -> str | None:
    voucher = session.get(Voucher, voucher_id)
    call = _call_for(voucher, utcnow()) if voucher is not None else None
    session.rollback()  # the call below happens outside any transaction
    if call is None:
        return None
    try:
        if call.create is not None:
            _create(client, call.create)
        else:
            _delete(client, call.coupon_id)
    except stripe.StripeError as exc:  # an outage must not break anything: record, retry later
        log.warning("stripe mirror of voucher %s failed: %s", voucher_id, exc)
        _record(session, call, "pending", str(exc)[:500] or type(exc).__name__)
        return "failed"
    _record(session, call, "synced" if call.create is not None else "deleted", None)
    return "created" if call.create is not None else "deleted"


def mirror(session: Session, config: StripeConfig, ids: Iterable[int]) -> dict[str, int]:
    """Bring these vouchers' coupons in line: create the coupon of a live voucher not mirrored
    yet, delete that of a used, void or expired one. One Stripe call per voucher, made outside
    any transaction; each outcome commits on its own. A failed call leaves the voucher pending
    with `stripe_error`. Returns counts per outcome; raises only database errors."""
    counts = {"created": 0, "deleted": 0, "failed": 0}
    if not config.enabled:
        return counts
    client = config.client()
    for voucher_id in sorted(set(ids)):
        outcome = _mirror_one(session, client, voucher_id)
        if outcome is not None:
            counts[outcome] += 1
    return counts


def due(session: Session, *, pending_before: datetime, limit: int = SWEEP_LIMIT) -> list[int]:
    """Vouchers whose coupon must change and that no job is known to be on: pending since before
    `pending_before` (their job was lost, or gave up), synced but expired, and live ones never
    mirrored (issued while Stripe was off). At most `limit`, the longest waiting first."""
    now = utcnow()
    queries = (
        select(Voucher.id)
        .where(Voucher.stripe_status == "pending", Voucher.stripe_updated_at < pending_before)
        .order_by(Voucher.stripe_updated_at),
        select(Voucher.id).where(Voucher.stripe_status == "synced", Voucher.valid_until <= now),
        select(Voucher.id).where(
            Voucher.stripe_status.is_(None), Voucher.valid_until > now, Voucher.status == "active"
        ),
    )
    ids: list[int] = []
    for query in queries:
        ids += session.scalars(query.limit(limit - len(ids))).all()
        if len(ids) >= limit:
            break
    return ids


def claim_due(session: Session, *, grace_seconds: int, limit: int = SWEEP_LIMIT) -> list[int]:
    """The sweep: the `due` vouchers (pending for longer than `grace_seconds`), marked pending as
    of now in the caller's transaction, so the next sweeps leave them to the job they are handed
    to for as long again. Returns their ids."""
    ids = due(session, pending_before=utcnow() - timedelta(seconds=grace_seconds), limit=limit)
    if ids:
        session.execute(
            update(Voucher)
            .where(Voucher.id.in_(ids))
            .values(stripe_status="pending", stripe_updated_at=utcnow())
        )
    return ids


def sync_all(session: Session, config: StripeConfig) -> dict[str, int]:
    """The sweep once, here and now (`flask loyalty stripe-sync`): mirror every due voucher,
    batch after batch, until none is left but those that failed in this run."""
    counts = {"created": 0, "deleted": 0, "failed": 0}
    started, seen = utcnow(), set()
    while True:
        ids = [i for i in due(session, pending_before=started, limit=MIRROR_BATCH) if i not in seen]
        session.rollback()
        if not ids:
            return counts
        seen.update(ids)
        for outcome, n in mirror(session, config, ids).items():
            counts[outcome] += n


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


def _member_for(session: Session, obj: Mapping[str, Any]) -> Member | None:
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
    email = _event_email(obj)
    if not email:
        return None
    try:
        normalised = members.normalise_email(email)
    except DomainError:
        return None
    return session.scalar(select(Member).where(Member.email == normalised))


def _event_email(obj: Mapping[str, Any]) -> str | None:
    """The payer's e-mail as the event carries it: an expanded customer, the payment's
    `receipt_email`, or the charge's billing details. A bare customer id is not looked up at
    Stripe: no network call inside a request (put the card number in the metadata instead)."""
    customer = obj.get("customer")
    billing = obj.get("billing_details")
    for candidate in (
        customer.get("email") if isinstance(customer, Mapping) else None,
        obj.get("receipt_email"),
        billing.get("email") if isinstance(billing, Mapping) else None,
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


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
    member = _member_for(session, obj)
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
