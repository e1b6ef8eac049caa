"""Purchases, returns, the checkout quote, adjustments and the ledger."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app
from marshmallow import validate

from loyalty.domain.feedback import link_for, token_for
from loyalty.models import ENTRY_KINDS
from loyalty.schemas.common import (
    MAX_AMOUNT,
    BalanceSchema,
    CardNumber,
    Id,
    ProblemSchema,
    ProgrammeDateTime,
    Reason,
    Schema,
    Str,
)
from loyalty.schemas.earning_rules import BreakdownItemSchema
from loyalty.schemas.vouchers import RefusalSchema

MAX_LINES = 500
MAX_BATCH = 500
MAX_QUANTITY = 10**6


def Amount(**kwargs: object) -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True,
        validate=validate.Range(min=0, max=MAX_AMOUNT),
        metadata={"description": "Minor units (1999 is 19.99)", "example": 1999},
        **kwargs,  # type: ignore[arg-type]
    )


def Currency(**kwargs: object) -> ma.fields.String:
    return ma.fields.String(
        validate=validate.Regexp(r"^[A-Za-z]{3}$"),
        metadata={"description": "ISO 4217; must be the programme's", "example": "EUR"},
        **kwargs,  # type: ignore[arg-type]
    )


class LineSchema(Schema):
    sku = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    category = Str(64, allow_none=True)
    quantity = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=MAX_QUANTITY)
    )
    unit_price = Amount(required=True)


class MemberRefMixin(Schema):
    card_number = CardNumber()
    member_id = Id()


class PurchaseCreateSchema(MemberRefMixin):
    external_id = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=255),
        metadata={"description": "The caller's own id of the sale (unique per API client)"},
    )
    amount = Amount(required=True)
    currency = Currency(required=True)
    occurred_at = ProgrammeDateTime(metadata={"description": "Default: now"})
    store_id = Str(100, allow_none=True)
    lines = ma.fields.List(ma.fields.Nested(LineSchema), validate=validate.Length(max=MAX_LINES))
    voucher_codes = ma.fields.List(
        Str(40),
        validate=validate.Length(max=10),
        metadata={"description": "Vouchers used on this sale: redeemed with it, or it is refused"},
    )


def _feedback_token(obj: Any) -> str:
    return token_for(obj.id, current_app.config["SECRET_KEY"])


def FeedbackToken() -> ma.fields.Function:
    return ma.fields.Function(
        _feedback_token,
        metadata={
            "description": "Print it as a QR code: POST /feedback/{token} takes the customer's "
            "scores without an API key, once, for 14 days after the purchase",
            "type": "string",
        },
    )


def _feedback_url(obj: Any) -> str:
    config = current_app.config
    return link_for(obj.id, config["SECRET_KEY"], config["LOYALTY_PUBLIC_URL"])


def FeedbackUrl() -> ma.fields.Function:
    return ma.fields.Function(
        _feedback_url,
        metadata={
            "description": "The customer's feedback page (LOYALTY_PUBLIC_URL/f/{feedback_token}); "
            "GET /purchases/{id}/feedback-qr gives it as a QR code to print on the receipt",
            "type": "string",
            "format": "uri",
        },
    )


class VoucherUseSchema(Schema):
    code = ma.fields.String(required=True)
    discount = ma.fields.Integer(required=True)


class PurchaseResultSchema(Schema):
    id = ma.fields.Integer(required=True)
    external_id = ma.fields.String(required=True)
    member_id = ma.fields.Integer(required=True)
    amount = ma.fields.Integer(required=True)
    currency = ma.fields.String(required=True)
    occurred_at = ma.fields.AwareDateTime(required=True)
    store_id = ma.fields.String(allow_none=True, required=True)
    points_earned = ma.fields.Integer(required=True)
    balance = ma.fields.Nested(BalanceSchema, required=True)
    vouchers_issued = ma.fields.List(ma.fields.Dict(), required=True)
    vouchers_redeemed = ma.fields.List(ma.fields.Nested(VoucherUseSchema))
    breakdown = ma.fields.List(
        ma.fields.Nested(BreakdownItemSchema),
        allow_none=True,
        required=True,
        metadata={
            "description": "What the points are made of: base first, then the tier, then each "
            "earning rule that added points; the parts add up to points_earned (null for a "
            "purchase recorded before breakdowns were kept)"
        },
    )
    feedback_token = FeedbackToken()
    feedback_url = FeedbackUrl()


class LineOutSchema(LineSchema):
    line_no = ma.fields.Integer(required=True)


class ReturnOutSchema(Schema):
    id = ma.fields.Integer(required=True)
    external_id = ma.fields.String(required=True)
    purchase_id = ma.fields.Integer(required=True)
    amount = ma.fields.Integer(required=True)
    points_reversed = ma.fields.Integer(required=True)
    occurred_at = ma.fields.AwareDateTime(required=True)


class ReturnResultSchema(ReturnOutSchema):
    balance = ma.fields.Nested(BalanceSchema, required=True)


class LedgerEntrySchema(Schema):
    id = ma.fields.Integer(required=True)
    member_id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True, metadata={"enum": list(ENTRY_KINDS)})
    points = ma.fields.Integer(required=True, metadata={"description": "Signed change"})
    balance_after = ma.fields.Integer(
        required=True, metadata={"description": "Posted points after"}
    )
    reason = ma.fields.String(required=True)
    note = ma.fields.String(allow_none=True, required=True)
    purchase_id = ma.fields.Integer(allow_none=True, required=True)
    return_id = ma.fields.Integer(allow_none=True, required=True)
    redemption_id = ma.fields.Integer(allow_none=True, required=True)
    actor = ma.fields.String(required=True)
    created_at = ma.fields.AwareDateTime(required=True)


class PurchaseDetailSchema(PurchaseResultSchema):
    returned_amount = ma.fields.Integer(required=True)
    points_reversed = ma.fields.Integer(required=True)
    lines = ma.fields.List(ma.fields.Nested(LineOutSchema), required=True)
    returns = ma.fields.List(ma.fields.Nested(ReturnOutSchema), required=True)
    ledger_entries = ma.fields.List(ma.fields.Nested(LedgerEntrySchema), required=True)
    created_at = ma.fields.AwareDateTime(required=True)


class ReturnLineSchema(Schema):
    sku = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    quantity = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=MAX_QUANTITY)
    )
    unit_price = Amount()


class ReturnCreateSchema(Schema):
    external_id = ma.fields.String(required=True, validate=validate.Length(min=1, max=255))
    amount = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "Refunded amount, minor units"},
    )
    currency = Currency()
    occurred_at = ProgrammeDateTime(metadata={"description": "Default: now"})
    lines = ma.fields.List(
        ma.fields.Nested(ReturnLineSchema),
        validate=validate.Length(max=MAX_LINES),
        metadata={
            "description": "Skus of the purchase's lines, in quantities not above what is left "
            "of them to return"
        },
    )


class QuoteSchema(MemberRefMixin):
    amount = Amount(required=True)
    currency = Currency(required=True)
    lines = ma.fields.List(ma.fields.Nested(LineSchema), validate=validate.Length(max=MAX_LINES))
    store_id = Str(100, allow_none=True)
    voucher_codes = ma.fields.List(Str(40), validate=validate.Length(max=20))
    reward_ids = ma.fields.List(Id(), validate=validate.Length(max=20))


class AwardSchema(Schema):
    kind = ma.fields.String(required=True)
    points = ma.fields.Integer(required=True)
    reason = ma.fields.String(required=True)


class QuoteVoucherSchema(Schema):
    code = ma.fields.String(
        required=True, metadata={"description": "As printed (ABCD-EFGH-JK); as sent if unknown"}
    )
    applicable = ma.fields.Boolean(required=True)
    discount = ma.fields.Integer(
        allow_none=True, required=True, metadata={"description": "What it takes off (minor units)"}
    )
    refusal = ma.fields.Nested(
        RefusalSchema,
        allow_none=True,
        required=True,
        metadata={"description": "Why not: the code redeeming it would get (null when it applies)"},
    )


class QuoteRewardSchema(Schema):
    reward_id = ma.fields.Integer(required=True)
    name = ma.fields.String(metadata={"description": "Absent for an unknown reward"})
    points_cost = ma.fields.Integer(metadata={"description": "Absent for an unknown reward"})
    benefit = ma.fields.Dict(metadata={"description": "Absent for an unknown reward"})
    available = ma.fields.Boolean(required=True, metadata={"description": "Active now"})
    affordable = ma.fields.Boolean(required=True, metadata={"description": "Redeemable now"})
    applicable = ma.fields.Boolean(
        required=True, metadata={"description": "A redemption now would be accepted"}
    )
    points = ma.fields.Integer(
        allow_none=True,
        required=True,
        metadata={"description": "Points the redemption would take (null when refused)"},
    )
    discount = ma.fields.Integer(
        allow_none=True,
        required=True,
        metadata={
            "description": "What it takes off this basket (minor units); a free item's unit "
            "price when the lines hold its sku, else null; null when refused"
        },
    )
    refusal = ma.fields.Nested(
        RefusalSchema,
        allow_none=True,
        required=True,
        metadata={"description": "Why not: the code POST /redemptions would get (null if none)"},
    )


class QuoteResultSchema(Schema):
    member_id = ma.fields.Integer(required=True)
    amount = ma.fields.Integer(required=True)
    currency = ma.fields.String(required=True)
    points_earned = ma.fields.Integer(required=True)
    awards = ma.fields.List(ma.fields.Nested(AwardSchema), required=True)
    breakdown = ma.fields.List(
        ma.fields.Nested(BreakdownItemSchema),
        required=True,
        metadata={"description": "As a purchase of this basket now would record it"},
    )
    balance = ma.fields.Nested(BalanceSchema, required=True)
    balance_after = ma.fields.Nested(BalanceSchema, required=True)
    vouchers = ma.fields.List(
        ma.fields.Nested(QuoteVoucherSchema),
        required=True,
        metadata={"description": "One per voucher_codes entry, in that order"},
    )
    rewards = ma.fields.List(ma.fields.Nested(QuoteRewardSchema), required=True)


class AdjustmentSchema(Schema):
    points = ma.fields.Integer(
        strict=True,
        required=True,
        validate=[
            validate.Range(min=-MAX_AMOUNT, max=MAX_AMOUNT),
            validate.NoneOf([0], error="An adjustment moves at least one point."),
        ],
    )
    reason = Reason(metadata={"description": "Kept as the entry's note; not blank"})


class AdjustmentResultSchema(LedgerEntrySchema):
    balance = ma.fields.Nested(BalanceSchema, required=True)


class BatchSchema(Schema):
    purchases = ma.fields.List(
        ma.fields.Dict(),
        required=True,
        validate=validate.Length(min=1, max=MAX_BATCH),
        metadata={"description": f"Up to {MAX_BATCH} purchases, as for POST /purchases"},
    )


class BatchItemResultSchema(Schema):
    external_id = ma.fields.String(allow_none=True, required=True)
    status = ma.fields.String(
        required=True, metadata={"enum": ["created", "duplicate", "rejected"]}
    )
    purchase_id = ma.fields.Integer()
    points_earned = ma.fields.Integer()
    feedback_token = ma.fields.String()
    error = ma.fields.Nested(ProblemSchema, metadata={"description": "Why it was rejected"})


class BatchResultSchema(Schema):
    results = ma.fields.List(ma.fields.Nested(BatchItemResultSchema), required=True)
