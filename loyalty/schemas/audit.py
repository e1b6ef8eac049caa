"""The audit trail: GET /audit-entries."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from loyalty.schemas.common import ProgrammeDate, QueryArgs, Schema, Str

_DAY = "YYYY-MM-DD, a UTC day"


class AuditQueryArgs(QueryArgs):
    target_type = Str(
        50,
        metadata={"description": "What was acted on: member, card, program, reward, api_key, …"},
    )
    target_id = Str(50, metadata={"description": "Its id (with target_type)"})
    actor = Str(100, metadata={"description": "The API key's name, or `cli`"})
    action = Str(
        50,
        metadata={"description": "e.g. member.update, points.adjust, api_key.revoke, read"},
    )
    from_ = ProgrammeDate(
        data_key="from", metadata={"description": f"{_DAY}: entries on or after it"}
    )
    to = ProgrammeDate(metadata={"description": f"{_DAY}: entries on or before it"})

    @ma.validates_schema
    def _ordered(self, data: dict, **_kwargs: object) -> None:
        if "from_" in data and "to" in data and data["to"] < data["from_"]:
            raise ma.ValidationError("to is before from.", "to")
        if "target_id" in data and "target_type" not in data:
            raise ma.ValidationError("target_id needs target_type.", "target_type")


class AuditEntrySchema(Schema):
    id = ma.fields.Integer(required=True)
    at = ma.fields.AwareDateTime(required=True)
    actor = ma.fields.String(
        required=True, metadata={"description": "The API key's name, or `cli`"}
    )
    api_client_id = ma.fields.Integer(
        allow_none=True, metadata={"description": "The key's client (null: the CLI)"}
    )
    action = ma.fields.String(required=True)
    target_type = ma.fields.String(required=True)
    target_id = ma.fields.String(required=True)
    reason = ma.fields.String(
        allow_none=True, metadata={"description": "The reason given, where the action takes one"}
    )
    changes = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.Raw(allow_none=True), validate=validate.Length(equal=2)),
        metadata={"description": "{field: [before, after]} of what the action changed"},
    )
    detail = ma.fields.Dict(
        metadata={"description": "Anything else the action recorded (a card number, a code, …)"}
    )
