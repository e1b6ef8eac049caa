"""Members and cards."""

from __future__ import annotations

import marshmallow as ma

from loyalty.schemas.common import BalanceSchema, Bool, CardNumber, Schema, Str


class CardBriefSchema(Schema):
    card_number = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": ["active", "blocked"]})


class MemberSchema(Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(allow_none=True, required=True)
    email = ma.fields.String(allow_none=True, required=True)
    phone = ma.fields.String(allow_none=True, required=True, metadata={"description": "E.164"})
    marketing_consent = ma.fields.Boolean(required=True)
    external_ref = ma.fields.String(allow_none=True, required=True)
    card_number = ma.fields.String(
        allow_none=True, required=True, metadata={"description": "The first active card"}
    )
    cards = ma.fields.List(ma.fields.Nested(CardBriefSchema), required=True)
    balance = ma.fields.Nested(BalanceSchema, required=True)
    tier = ma.fields.String(allow_none=True, required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    erased_at = ma.fields.AwareDateTime(allow_none=True, required=True)


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


class MemberSearchArgs(Schema):
    class Meta:
        unknown = ma.EXCLUDE

    email = Str(254)
    phone = Str(40)
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
    reason = Str(500, allow_none=True, metadata={"example": "lost"})
