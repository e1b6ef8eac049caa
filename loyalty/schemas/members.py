"""Members and cards."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from loyalty.schemas.common import BalanceSchema, Bool, CardNumber, QueryArgs, Reason, Schema, Str


class CardBriefSchema(Schema):
    card_number = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": ["active", "blocked"]})


#: Contact and consent data, read by `admin` keys only: `pos` and `webshop` keys read the member
#: as the card lookup shows it (name, tier, balance, cards), without these fields.
ADMIN_ONLY_FIELDS = ("email", "phone", "marketing_consent", "external_ref")
ADMIN_ONLY = {"description": "Present for admin keys only (absent for pos and webshop)"}


class MemberSchema(Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(allow_none=True, required=True)
    email = ma.fields.String(allow_none=True, metadata=ADMIN_ONLY)
    phone = ma.fields.String(
        allow_none=True, metadata={"description": f"E.164. {ADMIN_ONLY['description']}"}
    )
    marketing_consent = ma.fields.Boolean(metadata=ADMIN_ONLY)
    external_ref = ma.fields.String(allow_none=True, metadata=ADMIN_ONLY)
    card_number = ma.fields.String(
        allow_none=True, required=True, metadata={"description": "The first active card"}
    )
    cards = ma.fields.List(ma.fields.Nested(CardBriefSchema), required=True)
    balance = ma.fields.Nested(BalanceSchema, required=True)
    tier = ma.fields.String(allow_none=True, required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    erased_at = ma.fields.AwareDateTime(allow_none=True, required=True)


class IssuedVoucherSchema(Schema):
    """A voucher as the response that issued it lists it (for the receipt)."""

    code = ma.fields.String(required=True, metadata={"example": "7GQ8-XMGK-8P"})
    kind = ma.fields.String(required=True, metadata={"enum": ["welcome", "come_back"]})
    discount_type = ma.fields.String(required=True, metadata={"enum": ["amount", "percent"]})
    value = ma.fields.Integer(required=True)
    currency = ma.fields.String(required=True)
    min_spend = ma.fields.Integer(required=True)
    valid_from = ma.fields.String(required=True, metadata={"format": "date-time"})
    valid_until = ma.fields.String(required=True, metadata={"format": "date-time"})


class EnrolledMemberSchema(MemberSchema):
    vouchers_issued = ma.fields.List(
        ma.fields.Nested(IssuedVoucherSchema),
        required=True,
        metadata={"description": "The welcome voucher enrolment issued ([] when none)"},
    )


class MemberDetailSchema(MemberSchema):
    segment = ma.fields.String(
        allow_none=True,
        required=True,
        metadata={
            "description": "Where the member stands today (docs/metrics.md, Segments); "
            "null before their first purchase",
            "enum": ["lost", "at_risk", "new", "ambassador", "deal_seeker", "loyal", "occasional"],
        },
    )


class MemberCreateSchema(Schema):
    name = Str(200, allow_none=True)
    email = Str(320, allow_none=True, metadata={"example": "ann@example.com"})
    phone = Str(40, allow_none=True, metadata={"example": "+31612345678"})
    marketing_consent = Bool(load_default=False)
    external_ref = Str(100, allow_none=True, metadata={"description": "The retailer's own id"})
    card_number = CardNumber(
        allow_none=True, metadata={"description": "Activate this pre-printed card"}
    )


class MemberUpdateSchema(Schema):
    name = Str(200, allow_none=True)
    email = Str(320, allow_none=True)
    phone = Str(40, allow_none=True)
    marketing_consent = Bool(allow_none=True)
    external_ref = Str(100, allow_none=True)


class MemberSearchArgs(QueryArgs):
    email = ma.fields.String(
        validate=validate.Length(min=1, max=254),
        metadata={"format": "email", "example": "ann@example.com"},
    )
    phone = ma.fields.String(
        validate=validate.Length(min=1, max=40),
        metadata={
            "format": "phone",
            "description": "+ and the country code (national digits when the server sets "
            "LOYALTY_PHONE_REGION)",
            "example": "+31612345678",
        },
    )
    card_number = CardNumber()
    q = Str(100, metadata={"description": "Part of the name, e-mail or phone"})


class MemberRefSchema(Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(allow_none=True, required=True)
    tier = ma.fields.String(allow_none=True, required=True)


class CardSchema(Schema):
    """The till's card lookup."""

    card_number = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": ["active", "blocked"]})
    member = ma.fields.Nested(MemberRefSchema, required=True)
    balance = ma.fields.Nested(BalanceSchema, attribute="member.balance", required=True)


class CardIssueSchema(Schema):
    card_number = CardNumber(
        allow_none=True, metadata={"description": "A pre-printed card to activate"}
    )


class CardBlockSchema(Schema):
    reason = Reason(required=False, metadata={"example": "lost"})
