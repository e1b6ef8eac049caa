"""The Stripe events the webhook reads, checked in full before anything is written.

Stripe signs what it sends, but a validly signed event may still be one we cannot use: not a JSON
object the application's JSON reader takes (the API's `strict_loads`, passed in: no duplicate
keys, no deep nesting, no endless numbers), without `id` or `data.object`, an amount that is not
a whole number of minor units within our bounds (a string, a negative or a huge one), an unknown
currency, metadata naming a member id that cannot be one. `read` and the `*_SHAPE` schemas raise
`Unusable` for those, with a reason that names the field; the webhook then
acknowledges the event as ignored (so Stripe stops retrying: it would send the same bytes again)
and logs it. Fields we do not read are not checked (Stripe adds fields in every API version).

The shapes are those of Stripe's API reference (Event, PaymentIntent, Charge and its refunds,
Checkout Session with its `discounts` of coupons and promotion codes), which the `stripe` library
types in `stripe/_event.py`, `stripe/_payment_intent.py`, `stripe/_charge.py` and
`stripe/checkout/_session.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import iso4217
import marshmallow as ma
from marshmallow import validate

from loyalty.schemas.common import MAX_AMOUNT, unstorable

#: the latest second a `created` may name (9999-12-31T23:59:59Z)
MAX_TIMESTAMP = 253402300799
#: the longest id we read (Stripe's are about 30 characters); an id made from one (a refund's
#: fallback id, below 255 with its suffix) still fits StripeEvent.id and Purchase.external_id
MAX_ID = 200


class Unusable(Exception):
    """A signed event we cannot use; `reason` says why (it names the field)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    created: datetime | None
    object: dict[str, Any]


def read(payload: bytes, loads: Callable[[bytes], Any]) -> Event:
    """The event in a verified body, read by `loads` (a JSON reader raising ValueError for what
    it does not take). Raises Unusable."""
    try:
        doc = loads(payload)
    except ValueError as exc:
        raise Unusable(f"the body is not JSON we take: {exc}"[:200]) from None
    if not isinstance(doc, dict):
        raise Unusable("the body is not a JSON object")
    _check_strings(doc)
    envelope = load(EVENT_SHAPE, doc)
    return Event(
        envelope["id"], envelope["type"], envelope.get("created"), envelope["data"]["object"]
    )


def load(shape: ma.Schema, data: Any, where: str = "") -> dict[str, Any]:
    """`data` through `shape`, or Unusable naming the first field at fault (under `where`)."""
    try:
        loaded: dict[str, Any] = shape.load(data)
    except ma.ValidationError as exc:
        path, message = _first_error(exc.messages)
        raise Unusable(f"{where}{path}: {message}"[:200]) from None
    return loaded


def _check_strings(doc: dict[str, Any]) -> None:
    """Every string storable (no NUL, no lone surrogate), keys included; walked without
    recursion."""
    stack: list[Any] = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack += [*value.keys(), *value.values()]
        elif isinstance(value, list):
            stack += value
        elif isinstance(value, str) and unstorable(value):
            raise Unusable("a string holds a NUL character or an invalid code point")


def _first_error(messages: Any, path: str = "") -> tuple[str, str]:
    if isinstance(messages, Mapping):
        key, sub = next(iter(messages.items()))
        return _first_error(sub, f"{path}.{key}" if path else str(key))
    if isinstance(messages, list) and messages:
        first = messages[0]
        return (path, str(first)) if isinstance(first, str) else _first_error(first, path)
    return path, str(messages)


# fields ------------------------------------------------------------------------------------------
class WholeNumber(ma.fields.Integer):
    """A JSON integer (not a boolean, a float or a string) from `low` to `high`."""

    def __init__(self, low: int, high: int, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(low, high), **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def Money(low: int = 0, **kwargs: Any) -> WholeNumber:
    """An amount in minor units, `low` to MAX_AMOUNT."""
    return WholeNumber(low, MAX_AMOUNT, **kwargs)


class Timestamp(ma.fields.Field):
    """Seconds since the epoch, as Stripe's `created`, 0 to MAX_TIMESTAMP; read as an aware UTC
    datetime."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ma.ValidationError("Not a valid integer.")
        if not 0 <= value <= MAX_TIMESTAMP:
            raise ma.ValidationError(f"Must be between 0 and {MAX_TIMESTAMP}.")
        return datetime.fromtimestamp(value, UTC)


class Currency(ma.fields.String):
    """An ISO 4217 code in any case (Stripe writes them lower-case); read upper-case."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        code = super()._deserialize(value, attr, data, **kwargs).upper()
        try:
            iso4217.Currency(code)
        except ValueError:
            raise ma.ValidationError("Not a known ISO 4217 currency.") from None
        return code


class Ref(ma.fields.Field):
    """An expandable reference: an id, an object with an `id` (and maybe a `code`), or null.
    Read as {"id": …, "code": …} (either may be None)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        raw_id: Any
        code: Any
        if isinstance(value, str):
            raw_id, code = value, None
        elif isinstance(value, Mapping):
            raw_id, code = value.get("id"), value.get("code")
        else:
            raise ma.ValidationError("Not an id or an object.")
        for part in (raw_id, code):
            if part is not None and not (isinstance(part, str) and 0 < len(part) <= MAX_ID):
                raise ma.ValidationError(f"Not an id of 1 to {MAX_ID} characters.")
        return {"id": raw_id, "code": code}


class Customer(ma.fields.Field):
    """A customer id, or the expanded customer (only its `email` is read), or null."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, Mapping):
            return Payer().load(value)
        if isinstance(value, str):
            return value
        raise ma.ValidationError("Not a customer id or object.")


def Id(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(validate=validate.Length(1, MAX_ID), **kwargs)


def Text(max_len: int) -> ma.fields.String:
    return ma.fields.String(validate=validate.Length(max=max_len), allow_none=True)


# shapes ------------------------------------------------------------------------------------------
class Shape(ma.Schema):
    """Fields we do not read are left alone; null is allowed where Stripe writes it."""

    class Meta:
        unknown = ma.EXCLUDE


class Data(Shape):
    object = ma.fields.Dict(required=True)


class EventShape(Shape):
    id = Id(required=True)
    type = ma.fields.String(required=True, validate=validate.Length(1, 100))
    created = Timestamp(allow_none=True)
    data = ma.fields.Nested(Data, required=True)


class Metadata(Shape):
    """What a webshop puts in the metadata (Stripe's metadata values are strings)."""

    loyalty_card_number = Text(40)
    loyalty_member_id = ma.fields.String(
        allow_none=True,
        validate=validate.Regexp(r"^[1-9][0-9]{0,17}$", error="Not a member id."),
    )
    loyalty_voucher_codes = Text(500)


class Discount(Shape):
    coupon = Ref(allow_none=True)
    promotion_code = Ref(allow_none=True)


class Payer(Shape):
    """The e-mail addresses a payment carries: an expanded customer, the charge's billing
    details, a Checkout Session's customer details."""

    email = Text(254)


def _discounts() -> ma.fields.List:
    return ma.fields.List(
        ma.fields.Nested(Discount), allow_none=True, validate=validate.Length(max=20)
    )


class PaymentShape(Shape):
    """What a payment event carries, whatever object it is: its id, amount, currency, time,
    metadata, payer and discounts."""

    id = Id(required=True)
    currency = Currency(required=True)
    created = Timestamp(allow_none=True)
    metadata = ma.fields.Nested(Metadata, allow_none=True)
    customer = Customer(allow_none=True)
    receipt_email = Text(254)
    billing_details = ma.fields.Nested(Payer, allow_none=True)
    discounts = _discounts()


class PaymentIntentShape(PaymentShape):
    amount = Money(allow_none=True)
    amount_received = Money(allow_none=True)


class CheckoutSessionShape(PaymentShape):
    mode = ma.fields.String(allow_none=True)
    payment_status = ma.fields.String(allow_none=True)
    payment_intent = Ref(allow_none=True)
    amount_total = Money(required=True)
    amount_subtotal = Money(allow_none=True)
    customer_email = Text(254)
    customer_details = ma.fields.Nested(Payer, allow_none=True)


class Refund(Shape):
    id = Id(required=True)
    amount = Money(1, required=True)
    created = Timestamp(allow_none=True)


class Refunds(Shape):
    data = ma.fields.List(ma.fields.Nested(Refund), required=True)


class ChargeShape(Shape):
    id = Id(required=True)
    payment_intent = Ref(allow_none=True)
    currency = Currency(allow_none=True)
    amount_refunded = Money(allow_none=True)
    refunds = ma.fields.Nested(Refunds, allow_none=True)


EVENT_SHAPE = EventShape()
PAYMENT_INTENT_SHAPE = PaymentIntentShape()
CHECKOUT_SESSION_SHAPE = CheckoutSessionShape()
CHARGE_SHAPE = ChargeShape()
