"""Feedback: NPS (0-10), CES (1-7), CSAT (1-5) and a comment."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from loyalty.schemas.common import Id, Schema
from loyalty.schemas.purchases import MemberRefMixin


def _score(low: int, high: int, description: str) -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=low, max=high),
        metadata={"description": description},
    )


class ScoresSchema(Schema):
    nps = _score(0, 10, "Would you recommend us? 0-10")
    ces = _score(1, 7, "How much effort did it take? 1 (very little) - 7 (very much)")
    csat = _score(1, 5, "How satisfied are you? 1-5")
    comment = ma.fields.String(
        allow_none=True, validate=validate.Length(min=1, max=2000), metadata={"maxLength": 2000}
    )

    @ma.validates_schema
    def _not_empty(self, data: dict[str, Any], **_kwargs: object) -> None:
        if all(data.get(k) is None for k in ("nps", "ces", "csat", "comment")):
            raise ma.ValidationError("Give at least one score or a comment.", "nps")


class FeedbackCreateSchema(MemberRefMixin, ScoresSchema):
    purchase_id = Id(metadata={"description": "The purchase it is about (one feedback each)"})


class FeedbackSchema(Schema):
    id = ma.fields.Integer(required=True)
    member_id = ma.fields.Integer(required=True)
    purchase_id = ma.fields.Integer(allow_none=True, required=True)
    nps = ma.fields.Integer(allow_none=True, required=True)
    ces = ma.fields.Integer(allow_none=True, required=True)
    csat = ma.fields.Integer(allow_none=True, required=True)
    comment = ma.fields.String(allow_none=True, required=True)
    channel = ma.fields.String(required=True, metadata={"enum": ["api", "token"]})
    created_at = ma.fields.AwareDateTime(required=True)


class PublicFeedbackSchema(Schema):
    """What the customer sees back: no member data."""

    purchase_id = ma.fields.Integer(required=True)
    nps = ma.fields.Integer(allow_none=True, required=True)
    ces = ma.fields.Integer(allow_none=True, required=True)
    csat = ma.fields.Integer(allow_none=True, required=True)
    comment = ma.fields.String(allow_none=True, required=True)
    created_at = ma.fields.AwareDateTime(required=True)
