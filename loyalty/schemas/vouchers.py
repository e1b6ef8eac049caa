"""Vouchers and the win-back campaign."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from loyalty.models import CAMPAIGN_KINDS, CAMPAIGN_STATUSES, DISCOUNT_TYPES, VOUCHER_KINDS
from loyalty.schemas.common import MAX_AMOUNT, Bool, CardNumber, Id, QueryArgs, Reason, Schema


class RefusalSchema(Schema):
    code = ma.fields.String(required=True)
    detail = ma.fields.String(required=True)


class VoucherSchema(Schema):
    code = ma.fields.String(
        required=True, attribute="display_code", metadata={"example": "ABCD-EFGH-JK"}
    )
    kind = ma.fields.String(
        required=True, metadata={"enum": list(VOUCHER_KINDS), "description": "Why it was issued"}
    )
    discount_type = ma.fields.String(required=True, metadata={"enum": list(DISCOUNT_TYPES)})
    value = ma.fields.Integer(required=True, metadata={"description": "Minor units, or percent"})
    currency = ma.fields.String(required=True)
    min_spend = ma.fields.Integer(required=True)
    valid_from = ma.fields.AwareDateTime(required=True)
    valid_until = ma.fields.AwareDateTime(required=True)
    status = ma.fields.String(
        required=True, attribute="state", metadata={"enum": ["active", "used", "void", "expired"]}
    )
    member_id = ma.fields.Integer(required=True)
    reason = ma.fields.String(allow_none=True, required=True)
    used_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    discount_given = ma.fields.Integer(allow_none=True, required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    stripe_status = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "Stripe mirror (coupon and promotion code): null (off), pending, "
            "scheduled, synced, deleted"
        },
    )


class VoucherCheckSchema(VoucherSchema):
    applicable = ma.fields.Boolean(allow_none=True, metadata={"description": "With ?amount="})
    discount = ma.fields.Integer(
        allow_none=True, metadata={"description": "With ?amount=: what it takes off"}
    )
    refusal = ma.fields.Nested(RefusalSchema, allow_none=True)


class VoucherCheckArgs(QueryArgs):
    amount = ma.fields.Integer(strict=True, validate=validate.Range(min=0, max=MAX_AMOUNT))
    member_id = Id()


class VoucherRedeemSchema(Schema):
    order_ref = ma.fields.String(required=True, validate=validate.Length(min=1, max=255))
    amount = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=0, max=MAX_AMOUNT)
    )
    currency = ma.fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z]{3}$"))
    card_number = CardNumber()
    member_id = Id()


class VoucherVoidSchema(Schema):
    reason = Reason()


class VoucherRedeemResultSchema(Schema):
    code = ma.fields.String(required=True)
    discount = ma.fields.Integer(required=True)
    amount_after = ma.fields.Integer(required=True)
    voucher = ma.fields.Nested(VoucherSchema, required=True)


class GoodwillSchema(Schema):
    kind = ma.fields.String(
        required=True,
        validate=validate.OneOf(DISCOUNT_TYPES),
        metadata={"description": "amount or percent"},
    )
    value = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=MAX_AMOUNT)
    )
    valid_days = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=3650)
    )
    reason = Reason()
    min_spend = ma.fields.Integer(
        strict=True, load_default=0, validate=validate.Range(min=0, max=MAX_AMOUNT)
    )

    @ma.validates_schema
    def _percent_at_most_100(self, data: dict, **_kwargs: object) -> None:
        if data.get("kind") == "percent" and data.get("value", 0) > 100:
            raise ma.ValidationError("A percentage is at most 100.", "value")


class WinBackSchema(GoodwillSchema):
    reason = Reason(required=False)
    inactive_days = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=3650)
    )
    holdout_percent = ma.fields.Integer(
        strict=True, load_default=0, validate=validate.Range(min=0, max=100)
    )
    campaign = ma.fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Default: win_back:<date>"},
    )
    dry_run = Bool(load_default=False)


class WinBackResultSchema(Schema):
    campaign = ma.fields.String(required=True)
    dry_run = ma.fields.Boolean(required=True)
    eligible = ma.fields.Integer(required=True)
    issued = ma.fields.Integer(required=True)
    holdout = ma.fields.Integer(required=True)


class CampaignSchema(Schema):
    id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True, metadata={"enum": list(CAMPAIGN_KINDS)})
    campaign = ma.fields.String(
        required=True,
        attribute="name",
        metadata={"description": "The name the vouchers and holdout records carry"},
    )
    status = ma.fields.String(
        required=True,
        metadata={
            "enum": list(CAMPAIGN_STATUSES),
            "description": "pending (queued), running (its job issues batch after batch), done, "
            "failed (see error; gave up after LOYALTY_CAMPAIGN_MAX_ATTEMPTS attempts)",
        },
    )
    dry_run = ma.fields.Constant(
        False, required=True, metadata={"type": "boolean", "description": "Always false here"}
    )
    eligible = ma.fields.Integer(
        required=True, metadata={"description": "Members dealt with so far: issued + holdout"}
    )
    issued = ma.fields.Integer(required=True, metadata={"description": "Vouchers issued so far"})
    holdout = ma.fields.Integer(
        required=True, metadata={"description": "Members recorded as held out so far"}
    )
    params = ma.fields.Dict(
        required=True,
        metadata={
            "description": "The request's terms: inactive_days, kind, value, valid_days, "
            "min_spend, holdout_percent, reason"
        },
    )
    attempts = ma.fields.Integer(required=True)
    error = ma.fields.String(allow_none=True, required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    started_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    finished_at = ma.fields.AwareDateTime(allow_none=True, required=True)
