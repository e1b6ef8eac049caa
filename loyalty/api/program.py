"""/program: the programme's settings."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from loyalty import auth
from loyalty.api import actor
from loyalty.api.base import LoyaltyBlueprint
from loyalty.api.uow import transactional
from loyalty.domain import program
from loyalty.extensions import db
from loyalty.schemas.program import (
    ProgramSchema,
    ProgramUpdateArgs,
    ProgramUpdateResultSchema,
    ProgramUpdateSchema,
)

blp = LoyaltyBlueprint("program", __name__, description="The programme")


@blp.route("/program")
class ProgramResource(MethodView):
    @auth.require(*auth.ALL)
    @blp.response(200, ProgramSchema)
    def get(self) -> Any:
        """Currency, earn rate, rounding, expiry, reservation time, policies, tiers"""
        return program.get_program(db.session())

    @auth.require("admin")
    @transactional()
    @blp.arguments(ProgramUpdateSchema(), required=False)
    @blp.arguments(ProgramUpdateArgs(), location="query")
    @blp.response(200, ProgramUpdateResultSchema)
    def put(self, data: dict[str, Any], args: dict[str, Any]) -> Any:
        """Change the programme (the fields given replace the current ones); a new tier table
        or tier policy recomputes the members' tiers (`?dry_run=true`: who would move)"""
        return program.update_program(db.session(), data or {}, actor(), dry_run=args["dry_run"])
