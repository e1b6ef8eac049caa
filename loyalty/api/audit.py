"""/audit-entries: the audit trail of staff actions, for admin keys; and the recording of staff
reads of personal data (`note_read`)."""

from __future__ import annotations

from typing import Any

from flask import Response, after_this_request
from flask.views import MethodView

from loyalty import auth
from loyalty.api import actor
from loyalty.api.base import LoyaltyBlueprint, page_window
from loyalty.api.uow import unit_of_work
from loyalty.domain import audit
from loyalty.extensions import db
from loyalty.schemas.audit import AuditEntrySchema, AuditQueryArgs

blp = LoyaltyBlueprint("audit", __name__, description="The audit trail of staff actions")


@blp.route("/audit-entries")
class AuditEntries(MethodView):
    @auth.require("admin")
    @blp.arguments(AuditQueryArgs(), location="query")
    @blp.response(200, AuditEntrySchema(many=True))
    @blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> Any:
        """The audit trail, newest first: who did what to what, when, why, and the before and
        after of what changed; filtered by target, actor, action and UTC days"""
        offset, limit = page_window(pagination_parameters)
        items, total = audit.list_entries(db.session(), **args, offset=offset, limit=limit)
        pagination_parameters.item_count = total
        return items


def note_read(target_type: str, target_id: object, detail: dict[str, Any] | None = None) -> None:
    """Record a staff read of personal data (`audit.record_read`) once this request's answer is
    made, if it succeeded: in a short write transaction of its own, since a read request has none
    (on SQLite its deferred read transaction could not become a write without risking
    SQLITE_BUSY). One INSERT per read."""
    who = actor()

    @after_this_request
    def _record(response: Response) -> Response:
        if response.status_code == 200:
            with unit_of_work() as session:
                audit.record_read(session, who, target_type, target_id, detail)
        return response
