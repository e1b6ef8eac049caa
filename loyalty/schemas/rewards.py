"""Rewards and redemptions."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from loyalty.models import REDEMPTION_STATUSES, REWARD_KINDS
from loyalty.schemas.common import (
    MAX_AMOUNT,
    BalanceSchema,
    Bool,
    CardNumber,
    Id,
    ProgrammeDateTime,
    QueryArgs,
    Schema,
    Str,
)
from loyalty.schemas.purchases import MemberRefMixin


class BenefitSchema(Schema):
    kind = ma.fields.String(required=True, metadata={"enum": list(REWARD_KINDS)})
    value = ma.fields.Integer(
        allow_none=True,
        required=True,
        metadata={"description": "amount_off: minor units; percent_off: 1-100; free_item: null"},
    )
    currency = ma.fields.String(allow_none=True, required=True)
    sku = ma.fields.String(allow_none=True, required=True)


class RewardSchema(Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    kind = ma.fields.String(required=True, metadata={"enum": list(REWARD_KINDS)})
    value = ma.fields.Integer(allow_none=True, required=True)
    currency = ma.fields.String(allow_none=True, required=True)
    sku = ma.fields.String(allow_none=True, required=True)
    points_cost = ma.fields.Integer(required=True)
    active = ma.fields.Boolean(required=True)
    active_from = ma.fields.AwareDateTime(allow_none=True, required=True)
    active_until = ma.fields.AwareDateTime(allow_none=True, required=True)
    stock = ma.fields.Integer(
        allow_none=True, required=True, metadata={"description": "Units left"}
    )
    per_member_limit = ma.fields.Integer(allow_none=True, required=True)
    affordable = ma.fields.Boolean(
        allow_none=True,
        metadata={"description": "With member_id or card_number: can the member redeem it now"},
    )


class _RewardFields(Schema):
    """Fields a reward may leave out (create) or change (update)."""

    value = ma.fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=1, max=MAX_AMOUNT)
    )
    sku = Str(64, allow_none=True)
    active_from = ProgrammeDateTime(allow_none=True)
    active_until = ProgrammeDateTime(allow_none=True)
    stock = ma.fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=0, max=10**9)
    )
    per_member_limit = ma.fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=1, max=10**6)
    )


#: The most points a reward may cost.
MAX_POINTS_COST = 10**9


class RewardCreateSchema(_RewardFields):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = ma.fields.String(required=True, validate=validate.OneOf(REWARD_KINDS))
    points_cost = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=MAX_POINTS_COST)
    )


class RewardUpdateSchema(_RewardFields):
    name = ma.fields.String(validate=validate.Length(min=1, max=200))
    kind = ma.fields.String(validate=validate.OneOf(REWARD_KINDS))
    points_cost = ma.fields.Integer(
        strict=True, validate=validate.Range(min=1, max=MAX_POINTS_COST)
    )
    active = Bool()


class CatalogueArgs(QueryArgs):
    member_id = Id()
    card_number = CardNumber()


class RedemptionCreateSchema(MemberRefMixin):
    reward_id = Id(required=True)
    order_ref = Str(255, allow_none=True)
    instant = Bool(load_default=False, metadata={"description": "Reserve and redeem at once"})


class RedemptionConfirmSchema(Schema):
    purchase_external_id = ma.fields.String(
        allow_none=True,
        validate=validate.Length(min=1, max=255),
        metadata={
            "description": "Links the redemption to this client's purchase of this external_id, "
            "or else to the purchase a Stripe webhook recorded for this PaymentIntent id (pi_...)"
        },
    )
    purchase_id = Id(
        allow_none=True,
        metadata={
            "description": "Links the redemption to this purchase (recorded by this client or "
            "by a Stripe webhook)"
        },
    )


class RedemptionSchema(Schema):
    id = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True, metadata={"enum": list(REDEMPTION_STATUSES)})
    member_id = ma.fields.Integer(required=True)
    reward_id = ma.fields.Integer(required=True)
    points = ma.fields.Integer(required=True)
    benefit = ma.fields.Nested(BenefitSchema, required=True)
    order_ref = ma.fields.String(allow_none=True, required=True)
    purchase_id = ma.fields.Integer(allow_none=True, required=True)
    expires_at = ma.fields.AwareDateTime(required=True)
    redeemed_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    released_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    balance = ma.fields.Nested(BalanceSchema, required=True)
