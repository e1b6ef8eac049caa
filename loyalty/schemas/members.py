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


class TierProgressSchema(Schema):
    spend = ma.fields.Integer(
        required=True,
        metadata={"description": "Net spend (minor units) counted in the qualifying window now"},
    )
    next_tier = ma.fields.String(
        allow_none=True, required=True, metadata={"description": "null at the top tier"}
    )
    spend_to_next = ma.fields.Integer(
        allow_none=True,
        required=True,
        metadata={"description": "Net spend still missing to reach next_tier (0 or more)"},
    )
    held_until = ma.fields.AwareDateTime(
        allow_none=True,
        required=True,
        metadata={
            "description": "Until when the current tier is kept (end_of_period: the period's "
            "end plus grace; immediate: when it goes if nothing more is bought); null when "
            "there is no tier or it needs no spend"
        },
    )


class NextExpirySchema(Schema):
    points = ma.fields.Integer(required=True, metadata={"description": "Points that lapse then"})
    at = ma.fields.AwareDateTime(
        required=True,
        metadata={"description": "When: midnight (end of a day) in the programme's time zone"},
    )


class ExpiringArgs(QueryArgs):
    days = ma.fields.Integer(
        strict=True,
        load_default=30,
        validate=validate.Range(min=0, max=3650),
        metadata={"description": "Look this many days ahead (default 30)"},
    )


class ExpiringLotSchema(Schema):
    id = ma.fields.Integer(required=True)
    points = ma.fields.Integer(required=True, metadata={"description": "What is left to expire"})
    earned = ma.fields.Integer(required=True, metadata={"description": "What the lot started with"})
    expires_at = ma.fields.AwareDateTime(required=True)
    pending_until = ma.fields.AwareDateTime(allow_none=True, required=True)
    purchase_id = ma.fields.Integer(allow_none=True, required=True)
    created_at = ma.fields.AwareDateTime(required=True)


class ExpiringSchema(Schema):
    member_id = ma.fields.Integer(required=True)
    days = ma.fields.Integer(required=True)
    until = ma.fields.AwareDateTime(required=True)
    points = ma.fields.Integer(required=True, metadata={"description": "The lots' points, summed"})
    lots = ma.fields.List(ma.fields.Nested(ExpiringLotSchema), required=True)


class MemberDetailSchema(MemberSchema):
    next_expiry = ma.fields.Nested(
        NextExpirySchema,
        allow_none=True,
        required=True,
        metadata={"description": "The next points to expire and when; null when none do"},
    )
    tier_progress = ma.fields.Nested(
        TierProgressSchema,
        allow_none=True,
        required=True,
        metadata={"description": "null when the programme has no tiers"},
    )
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


class MemberSearchFields(ma.Schema):
    """The search terms, read from a body (POST /members/search) or a query string (GET)."""

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


class MemberSearchArgs(QueryArgs, MemberSearchFields):
    """The search in a query string (GET /members): kept for existing clients; prefer the POST,
    which keeps e-mail addresses and phone numbers out of URLs."""


class MemberSearchSchema(Schema, MemberSearchFields):
    """The search in a body (POST /members/search); unknown fields are refused."""


class MemberExportSchema(Schema):
    """Everything held about a member (GET /members/{id}/export): each row with all its stored
    columns, times in ISO 8601 (UTC)."""

    exported_at = ma.fields.String(required=True, metadata={"format": "date-time"})
    member = ma.fields.Dict(required=True)
    cards = ma.fields.List(ma.fields.Dict(), required=True)
    ledger = ma.fields.List(ma.fields.Dict(), required=True)
    point_lots = ma.fields.List(ma.fields.Dict(), required=True)
    tier_changes = ma.fields.List(ma.fields.Dict(), required=True)
    purchases = ma.fields.List(
        ma.fields.Dict(), required=True, metadata={"description": "Each with its `lines`"}
    )
    returns = ma.fields.List(ma.fields.Dict(), required=True)
    vouchers = ma.fields.List(ma.fields.Dict(), required=True)
    voucher_holdouts = ma.fields.List(
        ma.fields.Dict(),
        required=True,
        metadata={"description": "Vouchers the member was held out of (control group)"},
    )
    redemptions = ma.fields.List(ma.fields.Dict(), required=True)
    feedback = ma.fields.List(ma.fields.Dict(), required=True)
    audit_entries = ma.fields.List(
        ma.fields.Dict(), required=True, metadata={"description": "Staff actions about the member"}
    )


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
