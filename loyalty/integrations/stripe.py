"""Stripe: vouchers mirrored as coupons with promotion codes, and webhooks turned into purchases,
returns and used vouchers.

Configured by STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET and STRIPE_API_BASE; without a key Stripe is
off and the mirror does nothing. Every call has a timeout (STRIPE_TIMEOUT_SECONDS) and at most
STRIPE_MAX_NETWORK_RETRIES network retries.

The mirror never runs inside a request: the transaction that issues, uses or voids a voucher
marks it `pending`, a background job (`mirror`) then creates its coupon and its promotion code
(the customer-facing code is the voucher's, so a customer types it in Stripe Checkout) or
deactivates the promotion code and deletes the coupon, and marks it `synced` or `deleted`; a
voucher valid only from a later time is `scheduled` until then (Stripe promotion codes have no
start). A failure leaves it `pending` with `stripe_error`. The periodic sweep (`claim_due`) hands
the job again whatever stayed pending, the scheduled ones whose time has come, the vouchers of
expired vouchers, and synced ones still without a promotion code. A Stripe call happens outside
any database transaction.

Webhooks (`handle`) make no Stripe call: everything is read from the signed event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalty.domain import members, purchases, vouchers
from loyalty.domain.clients import system_actor
from loyalty.domain.context import Actor, Limits
from loyalty.domain.sql import upsert
from loyalty.errors import DomainError, InvalidSignature, NotFound
from loyalty.integrations import stripe_events
from loyalty.integrations.stripe_events import Unusable
from loyalty.models import Member, Purchase, StripeEvent, Voucher
from loyalty.models.types import utcnow

log = logging.getLogger(__name__)

#: a signature older than this, or dated further ahead than this, is refused (seconds)
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


# the mirror --------------------------------------------------------------------------------------
#: vouchers per mirror job, and per pass of the sweep
MIRROR_BATCH = 100
SWEEP_LIMIT = 1000


def _metadata(voucher: Voucher) -> dict[str, str]:
    return {"loyalty_member_id": str(voucher.member_id), "loyalty_voucher_id": str(voucher.id)}


def coupon_params(voucher: Voucher) -> dict[str, Any]:
    """The coupon: its id is the voucher's code, once, one redemption, until `valid_until`."""
    params: dict[str, Any] = {
        "id": voucher.display_code,
        "duration": "once",
        "max_redemptions": 1,
        "redeem_by": int(voucher.valid_until.timestamp()),
        "metadata": _metadata(voucher),
    }
    if voucher.discount_type == "amount":
        params.update(amount_off=voucher.value, currency=voucher.currency.lower())
    else:
        params["percent_off"] = voucher.value
    return params


def promotion_code_params(voucher: Voucher) -> dict[str, Any]:
    """The promotion code of the voucher's coupon: the customer types the voucher's code (as it
    is printed, ABCD-EFGH-JK; Stripe ignores case), once, until `valid_until`; the minimum spend
    as Stripe's `minimum_amount` (which Stripe compares with the basket before discounts, as
    the webhook does)."""
    params: dict[str, Any] = {
        "promotion": {"type": "coupon", "coupon": voucher.display_code},
        "code": voucher.display_code,
        "max_redemptions": 1,
        "expires_at": int(voucher.valid_until.timestamp()),
        "metadata": _metadata(voucher),
    }
    if voucher.min_spend > 0:
        params["restrictions"] = {
            "minimum_amount": voucher.min_spend,
            "minimum_amount_currency": voucher.currency.lower(),
        }
    return params


def _create_coupon(client: stripe.StripeClient, params: dict[str, Any]) -> None:
    try:
        client.v1.coupons.create(params=params)  # type: ignore[arg-type]
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "code", None) != "resource_already_exists":
            raise  # else: an earlier try created it before we could record that


def _find_promotion_code(client: stripe.StripeClient, code: str, coupon_id: str) -> str | None:
    """The id of the active promotion code `code` of our coupon, if Stripe has one."""
    page = client.v1.promotion_codes.list(params={"code": code, "active": True, "limit": 10})
    for promotion_code in page.data:
        coupon = promotion_code.promotion.coupon
        if (coupon if isinstance(coupon, str) else getattr(coupon, "id", None)) == coupon_id:
            return str(promotion_code.id)
    return None


def _create_promotion_code(client: stripe.StripeClient, params: dict[str, Any]) -> str:
    """The promotion code's id. If Stripe refuses because an earlier try created it before we
    could record its id (a code is unique among active ones), that one's id."""
    try:
        return str(client.v1.promotion_codes.create(params=params).id)  # type: ignore[arg-type]
    except stripe.InvalidRequestError:
        found = _find_promotion_code(client, params["code"], params["promotion"]["coupon"])
        if found is None:
            raise
        return found


def _create(client: stripe.StripeClient, call: _Call) -> str:
    """The coupon, then its promotion code; returns the promotion code's id."""
    assert call.create is not None and call.promotion is not None
    _create_coupon(client, call.create)
    return _create_promotion_code(client, call.promotion)


def _delete(client: stripe.StripeClient, call: _Call) -> None:
    """The promotion code deactivated (found by its code if its id was never recorded), then the
    coupon deleted. What is gone already is what we want."""
    promotion_code_id = call.promotion_code_id or _find_promotion_code(
        client, call.coupon_id, call.coupon_id
    )
    if promotion_code_id is not None:
        _unless_gone(
            lambda: client.v1.promotion_codes.update(promotion_code_id, params={"active": False})
        )
    _unless_gone(lambda: client.v1.coupons.delete(call.coupon_id))


def _unless_gone(call: Callable[[], Any]) -> None:
    try:
        call()
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "http_status", None) != 404:
            raise


@dataclass(frozen=True)
class _Call:
    """What to do with one voucher's coupon and promotion code, read before the call (no
    transaction stays open)."""

    voucher_id: int
    seen_status: str
    coupon_id: str
    promotion_code_id: str | None
    action: str  # create | delete | schedule
    create: dict[str, Any] | None = None  # the coupon's params
    promotion: dict[str, Any] | None = None  # the promotion code's params


def _call_for(voucher: Voucher, now: datetime) -> _Call | None:
    to_mirror = voucher.stripe_status in (None, "pending", "scheduled")
    if voucher.status == "active" and now < voucher.valid_from and to_mirror:
        action = "schedule"  # created when it becomes valid
    elif voucher.status == "active" and voucher.valid_from <= now < voucher.valid_until:
        action = "create" if to_mirror else ""
    else:
        action = "delete" if voucher.stripe_status in ("pending", "synced") else ""
    if not action:
        return None  # mirrored already, or never mirrored and no longer live
    create = action == "create"
    return _Call(
        voucher.id,
        voucher.status,
        voucher.display_code,
        voucher.stripe_promotion_code_id,
        action,
        coupon_params(voucher) if create else None,
        promotion_code_params(voucher) if create else None,
    )


def _record(
    session: Session,
    call: _Call,
    stripe_status: str,
    error: str | None,
    promotion_code_id: str | None = None,
) -> None:
    """Commit the outcome if the voucher is still as the call saw it; if it changed meanwhile
    (used or voided during the call), mark it pending again for the sweep to follow up. A
    promotion code created is recorded either way (its deactivation needs the id)."""
    now = utcnow()
    values: dict[str, Any] = {"stripe_updated_at": now}
    if promotion_code_id is not None:
        values["stripe_promotion_code_id"] = promotion_code_id
    done = session.execute(
        update(Voucher)
        .where(Voucher.id == call.voucher_id, Voucher.status == call.seen_status)
        .values(stripe_status=stripe_status, stripe_error=error, **values)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.execute(
            update(Voucher)
            .where(Voucher.id == call.voucher_id)
            .values(stripe_status="pending", **values)
        )
    session.commit()


def _mirror_one(session: Session, client: stripe.StripeClient, voucher_id: int) -> str | None:
    voucher = session.get(Voucher, voucher_id)
    call = _call_for(voucher, utcnow()) if voucher is not None else None
    session.rollback()  # the calls below happen outside any transaction
    if call is None:
        return None
    if call.action == "schedule":
        _record(session, call, "scheduled", None)
        return "scheduled"
    promotion_code_id = None
    try:
        if call.action == "create":
            promotion_code_id = _create(client, call)
        else:
            _delete(client, call)
    except stripe.StripeError as exc:  # an outage must not break anything: record, retry later
        log.warning("stripe mirror of voucher %s failed: %s", voucher_id, exc)
        _record(session, call, "pending", str(exc)[:500] or type(exc).__name__)
        return "failed"
    if call.action == "create":
        _record(session, call, "synced", None, promotion_code_id)
        return "created"
    _record(session, call, "deleted", None)
    return "deleted"


def mirror(session: Session, config: StripeConfig, ids: Iterable[int]) -> dict[str, int]:
    """Bring these vouchers' coupons and promotion codes in line: create those of a live voucher
    not mirrored yet (a voucher valid from a later time is `scheduled`), deactivate and delete
    those of a used, void or expired one. The calls of one voucher are made outside any
    transaction; each outcome commits on its own. A failed call leaves the voucher pending with
    `stripe_error`. Returns counts per outcome; raises only database errors."""
    counts = {"created": 0, "deleted": 0, "scheduled": 0, "failed": 0}
    if not config.enabled:
        return counts
    client = config.client()
    for voucher_id in sorted(set(ids)):
        outcome = _mirror_one(session, client, voucher_id)
        if outcome is not None:
            counts[outcome] += 1
    return counts


def due(session: Session, *, pending_before: datetime, limit: int = SWEEP_LIMIT) -> list[int]:
    """Vouchers whose mirror must change and that no job is known to be on: pending since before
    `pending_before` (their job was lost, or gave up), synced but expired, live ones never
    mirrored (issued while Stripe was off), scheduled ones now valid, and synced live ones
    without a promotion code (mirrored before there were promotion codes). At most `limit`,
    the longest waiting first."""
    now = utcnow()
    live = (Voucher.status == "active", Voucher.valid_until > now)
    queries = (
        select(Voucher.id)
        .where(Voucher.stripe_status == "pending", Voucher.stripe_updated_at < pending_before)
        .order_by(Voucher.stripe_updated_at),
        select(Voucher.id).where(Voucher.stripe_status == "synced", Voucher.valid_until <= now),
        select(Voucher.id).where(Voucher.stripe_status.is_(None), *live),
        select(Voucher.id).where(Voucher.stripe_status == "scheduled", Voucher.valid_from <= now),
        select(Voucher.id).where(
            Voucher.stripe_status == "synced", Voucher.stripe_promotion_code_id.is_(None), *live
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
    counts = {"created": 0, "deleted": 0, "scheduled": 0, "failed": 0}
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
def verify(payload: bytes, signature: str | None, config: StripeConfig) -> None:
    """Raises InvalidSignature unless the body is signed with the webhook secret at a time
    within SIGNATURE_TOLERANCE_SECONDS of now, before or after (the `stripe` library checks the
    past only)."""
    if not config.webhook_secret or not signature:
        raise InvalidSignature(field="Stripe-Signature")
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, config.webhook_secret, SIGNATURE_TOLERANCE_SECONDS
        )
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise InvalidSignature(str(exc)[:200], field="Stripe-Signature") from None
    signed_at = _signed_at(signature)
    if signed_at > utcnow().timestamp() + SIGNATURE_TOLERANCE_SECONDS:
        raise InvalidSignature(
            f"The signature's timestamp {signed_at} lies more than "
            f"{SIGNATURE_TOLERANCE_SECONDS} s in the future.",
            field="Stripe-Signature",
        )


def _signed_at(signature: str) -> int:
    """The `t=` of a header that verified, read as the `stripe` library reads it (the first)."""
    return next(int(item.split("=", 2)[1]) for item in signature.split(",") if item[:2] == "t=")


@dataclass(frozen=True)
class Outcome:
    """What became of an event: `processed`, `duplicate`, `ignored` (nothing to do, or an event
    we cannot use) or `rejected` (a rule refused it); `detail` says what was done or why not."""

    status: str
    detail: str | None = None

    @property
    def text(self) -> str:
        if self.status == "processed" and self.detail:
            return self.detail
        return f"{self.status}: {self.detail}" if self.detail else self.status


def stripe_actor(session: Session) -> Actor:
    """The API client webhook purchases and returns are recorded under (no usable key)."""
    return system_actor(session, "stripe", "(webhooks)")


def handle(
    session: Session, payload: bytes, *, limits: Limits, loads: Callable[[bytes], Any]
) -> Outcome:
    """Process a verified event once: its id is recorded in this transaction, with its outcome.
    An event we cannot use (stripe_events.Unusable) is ignored and logged; a rule that refuses
    it is logged too; neither raises, so Stripe is answered 2xx and stops retrying. The body is
    read by `loads` (the application's JSON reader); a purchase is held to `limits` as any
    other."""
    try:
        event = stripe_events.read(payload, loads)
    except Unusable as exc:
        log.warning("stripe event ignored: %s", exc.reason)
        return Outcome("ignored", exc.reason)
    inserted = session.execute(
        upsert(session, StripeEvent)
        .values(id=event.id, type=event.type, outcome="", received_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(StripeEvent.id)
    ).scalar()
    if inserted is None:
        return Outcome("duplicate")
    handler = HANDLERS.get(event.type)
    try:
        outcome = handler(session, event, limits) if handler else Outcome("ignored", "not handled")
    except Unusable as exc:
        log.warning("stripe event %s (%s) ignored: %s", event.id, event.type, exc.reason)
        outcome = Outcome("ignored", exc.reason)
    record = session.get(StripeEvent, event.id)
    assert record is not None
    record.outcome = outcome.text[:200]
    return outcome


@dataclass(frozen=True)
class Payment:
    """A completed payment as the webhook reads it, whichever object carried it."""

    external_id: str  # the purchase's: the PaymentIntent's id (a Checkout Session's own without)
    amount: int  # paid
    basket: int  # before discounts: what a voucher's percentage and minimum spend apply to
    currency: str
    occurred_at: datetime | None
    metadata: Mapping[str, Any]
    emails: tuple[str, ...]
    discounts: tuple[Mapping[str, Any], ...]


def _emails(obj: Mapping[str, Any], *payers: str) -> tuple[str, ...]:
    """The payer's e-mail addresses as the event carries them: an expanded customer, the
    payment's `receipt_email` or a session's `customer_email`, the billing or customer details.
    A bare customer id is not looked up at Stripe: no network call inside a request."""
    customer = obj.get("customer")
    candidates = [customer.get("email") if isinstance(customer, Mapping) else None]
    candidates += [obj.get(name) for name in ("receipt_email", "customer_email")]
    candidates += [(obj.get(name) or {}).get("email") for name in payers]
    return tuple(c for c in candidates if c)


def _payment_intent(event: stripe_events.Event) -> Payment:
    obj = stripe_events.load(stripe_events.PAYMENT_INTENT_SHAPE, event.object, "data.object.")
    amount = obj.get("amount_received")
    amount = obj.get("amount") if amount is None else amount
    if amount is None:
        raise Unusable("data.object.amount: Missing data for required field.")
    return Payment(
        external_id=obj["id"],
        amount=amount,
        basket=amount,
        currency=obj["currency"],
        occurred_at=event.created or obj.get("created"),
        metadata=obj.get("metadata") or {},
        emails=_emails(obj, "billing_details"),
        discounts=tuple(obj.get("discounts") or ()),
    )


def _checkout_session(event: stripe_events.Event) -> Payment | Outcome:
    """A Checkout Session in `payment` mode that is paid (or needed no payment: a basket its
    discounts took to zero). One that is still `unpaid` (a delayed payment method) is ignored:
    `checkout.session.async_payment_succeeded` follows when the money arrives."""
    obj = stripe_events.load(stripe_events.CHECKOUT_SESSION_SHAPE, event.object, "data.object.")
    if obj.get("mode") not in (None, "payment"):
        return Outcome("ignored", f"a Checkout Session in {obj['mode']} mode")
    if obj.get("payment_status") not in ("paid", "no_payment_required"):
        return Outcome("ignored", f"payment_status is {obj.get('payment_status')}, not paid")
    intent = obj.get("payment_intent") or {}
    subtotal = obj.get("amount_subtotal")
    return Payment(
        external_id=intent.get("id") or obj["id"],
        amount=obj["amount_total"],
        basket=obj["amount_total"] if subtotal is None else subtotal,
        currency=obj["currency"],
        occurred_at=event.created or obj.get("created"),
        metadata=obj.get("metadata") or {},
        emails=_emails(obj, "customer_details"),
        discounts=tuple(obj.get("discounts") or ()),
    )


def _member_for(session: Session, payment: Payment) -> Member | None:
    """The member the metadata names (`loyalty_card_number`, else `loyalty_member_id`), else
    the member with the payer's e-mail address."""
    metadata = payment.metadata
    try:
        if metadata.get("loyalty_card_number"):
            return members.resolve_member(
                session, card_number=metadata["loyalty_card_number"], for_use=False
            )
        if metadata.get("loyalty_member_id"):
            return members.get_member(session, int(metadata["loyalty_member_id"]))
    except DomainError:
        return None
    for email in payment.emails:
        try:
            normalised = members.normalise_email(email)
        except DomainError:
            continue
        member = session.scalar(select(Member).where(Member.email == normalised))
        if member is not None:
            return member
    return None


def _voucher_codes(session: Session, payment: Payment) -> list[str]:
    """The codes of our vouchers the payment used: the promotion codes of its discounts (by the
    id we recorded, else by their code), its coupons (a coupon's id is a voucher's code) and
    `metadata.loyalty_voucher_codes`; in order, once each. Codes not ours are left out."""
    raw: list[str] = []
    for discount in payment.discounts:
        promotion = discount.get("promotion_code") or {}
        if promotion.get("id"):
            code = session.scalar(
                select(Voucher.code).where(Voucher.stripe_promotion_code_id == promotion["id"])
            )
            raw.append(code or "")
        raw.append(promotion.get("code") or "")
        raw.append((discount.get("coupon") or {}).get("id") or "")
    raw += str(payment.metadata.get("loyalty_voucher_codes") or "").split(",")
    codes = [vouchers.normalise_code(c) for c in raw]
    return list(dict.fromkeys(c for c in codes if c))


def _record_purchase(
    session: Session, payment: Payment, member: Member, actor: Actor, limits: Limits
) -> tuple[int | None, str]:
    """The purchase through `purchases.record_purchase`, in a savepoint: a rule that refuses it
    leaves nothing behind. Returns (purchase id, what happened) or (None, the refusal's code)."""
    data = {
        "external_id": payment.external_id,
        "member_id": member.id,
        "amount": payment.amount,
        "currency": payment.currency,
        "occurred_at": payment.occurred_at,
    }
    try:
        with session.begin_nested():
            receipt, created = purchases.record_purchase(session, data, actor=actor, limits=limits)
    except DomainError as exc:
        log.warning("payment %s refused: %s %s", payment.external_id, exc.code, exc.detail)
        return None, exc.code
    return receipt.id, f"purchase {receipt.id} {'created' if created else 'exists'}"


def _use_vouchers(
    session: Session, payment: Payment, codes: list[str], purchase_id: int | None, actor: Actor
) -> tuple[list[str], list[str]]:
    """Mark the vouchers Stripe applied as used, through `vouchers.redeem`, on the basket before
    discounts and without naming a member (Stripe took the code from whoever typed it, as the
    redeem endpoint does), linked to the purchase when there is one. Stripe has taken the money
    already, so a voucher refused (used at a till meanwhile, voided) is logged, not raised.
    One this payment used already counts as used. Returns (used, refused) display texts."""
    used, refused = [], []
    for code in codes:
        try:
            voucher = vouchers.get_voucher(session, code)
        except NotFound:
            continue
        if voucher.status == "used" and voucher.used_order_ref == payment.external_id:
            used.append(voucher.display_code)
            continue
        terms = {"order_ref": payment.external_id, "amount": payment.basket}
        try:
            with session.begin_nested():
                vouchers.redeem(
                    session,
                    code,
                    {**terms, "currency": payment.currency},
                    actor=actor,
                    purchase_id=purchase_id,
                )
        except DomainError as exc:
            log.warning(
                "voucher %s on payment %s not used: %s", code, payment.external_id, exc.code
            )
            refused.append(f"{voucher.display_code} ({exc.code})")
            continue
        used.append(voucher.display_code)
    return used, refused


def _payment_outcome(session: Session, payment: Payment, limits: Limits) -> Outcome:
    """The purchase for the member it names (if any) and the vouchers it used, in this
    transaction. Processed when either was recorded; else ignored (no member) or rejected (the
    purchase's refusal code first in the detail)."""
    actor = stripe_actor(session)
    member = _member_for(session, payment)
    purchase_id, what = None, "no member"
    if member is not None:
        purchase_id, what = _record_purchase(session, payment, member, actor, limits)
    used, refused = _use_vouchers(
        session, payment, _voucher_codes(session, payment), purchase_id, actor
    )
    vouchers_part = [f"vouchers used: {', '.join(used)}"] if used else []
    vouchers_part += [f"vouchers refused: {', '.join(refused)}"] if refused else []
    if purchase_id is None and not used:
        if member is None:
            log.info("payment %s: no member found; ignored", payment.external_id)
        return Outcome(
            "ignored" if member is None else "rejected", ", ".join([what, *vouchers_part])
        )
    if member is not None and purchase_id is None:
        what = f"purchase rejected: {what}"
    return Outcome("processed", ", ".join([what, *vouchers_part]))


def _payment_succeeded(session: Session, event: stripe_events.Event, limits: Limits) -> Outcome:
    return _payment_outcome(session, _payment_intent(event), limits)


def _checkout_completed(session: Session, event: stripe_events.Event, limits: Limits) -> Outcome:
    payment = _checkout_session(event)
    return payment if isinstance(payment, Outcome) else _payment_outcome(session, payment, limits)


def _refunds(obj: Mapping[str, Any], purchase: Purchase) -> list[Mapping[str, Any]]:
    """The charge's refunds; without a list (Stripe no longer includes it by default), what is
    newly refunded, under an id made of the running total."""
    refunds = list((obj.get("refunds") or {}).get("data") or [])
    total = obj.get("amount_refunded")
    if not refunds and total:
        new = total - purchase.returned_amount
        refunds = [{"id": f"{obj['id']}:{total}", "amount": new}] if new > 0 else []
    return refunds


def _charge_refunded(session: Session, event: stripe_events.Event, _limits: Limits) -> Outcome:
    obj = stripe_events.load(stripe_events.CHARGE_SHAPE, event.object, "data.object.")
    actor = stripe_actor(session)
    intent = (obj.get("payment_intent") or {}).get("id")
    purchase = session.scalar(
        select(Purchase).where(
            Purchase.api_client_id == actor.client_id, Purchase.external_id == (intent or "")
        )
    )
    if purchase is None:
        return Outcome("ignored", "no purchase for this payment")
    outcomes = []
    for refund in _refunds(obj, purchase):
        data = {"external_id": refund["id"], "amount": refund["amount"]}
        data.update({"currency": obj["currency"]} if obj.get("currency") else {})
        try:
            with session.begin_nested():
                ret, created = purchases.record_return(session, purchase.id, data, actor=actor)
            outcomes.append(f"return {ret.id} {'created' if created else 'exists'}")
        except DomainError as exc:
            log.warning("refund %s refused: %s", refund["id"], exc.code)
            outcomes.append(f"refund {refund['id']} rejected: {exc.code}")
    if not outcomes:
        return Outcome("ignored", "nothing refunded")
    if all(" rejected: " in outcome for outcome in outcomes):
        return Outcome("rejected", "; ".join(outcomes))
    return Outcome("processed", "; ".join(outcomes))


Handler = Callable[[Session, stripe_events.Event, Limits], Outcome]

HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": _payment_succeeded,
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "charge.refunded": _charge_refunded,
}
