"""/earning-rules: multipliers and bonuses (admin)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from loyalty import auth
from loyalty.api import actor
from loyalty.api.base import LoyaltyBlueprint, page_window
from loyalty.api.uow import transactional
from loyalty.domain import earning_rules
from loyalty.extensions import db
from loyalty.schemas.earning_rules import (
    EarningRuleCreateSchema,
    EarningRuleSchema,
    EarningRuleUpdateSchema,
    EarningRuleVersionSchema,
)

blp = LoyaltyBlueprint("earning_rules", __name__, description="Earning rules")


@blp.route("/earning-rules")
class EarningRules(MethodView):
    @auth.require("admin")
    @blp.response(200, EarningRuleSchema(many=True))
    @blp.paginate()
    def get(self, pagination_parameters: Any) -> Any:
        """The earning rules (not deleted), newest first"""
        offset, limit = page_window(pagination_parameters)
        items, total = earning_rules.list_rules(db.session(), offset=offset, limit=limit)
        pagination_parameters.item_count = total
        return items

    @auth.require("admin")
    @transactional(idempotent=True)
    @blp.arguments(EarningRuleCreateSchema())
    @blp.response(201, EarningRuleSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Add a rule: a multiplier or bonus points, with its conditions, cap and budget"""
        return earning_rules.create_rule(db.session(), data, actor=actor())


@blp.route("/earning-rules/<id:rule_id>")
class EarningRuleById(MethodView):
    @auth.require("admin")
    @blp.response(200, EarningRuleSchema)
    def get(self, rule_id: int) -> Any:
        """A rule"""
        return earning_rules.get_rule(db.session(), rule_id)

    @auth.require("admin")
    @transactional()
    @blp.arguments(EarningRuleUpdateSchema(), required=False)
    @blp.response(200, EarningRuleSchema)
    def patch(self, data: dict[str, Any], rule_id: int) -> Any:
        """Change a rule (a new version: past purchases keep what they earned)"""
        return earning_rules.update_rule(db.session(), rule_id, data or {}, actor=actor())

    @auth.require("admin")
    @transactional()
    @blp.response(204)
    def delete(self, rule_id: int) -> None:
        """Delete a rule: it stops earning; its versions and past breakdowns stay"""
        earning_rules.delete_rule(db.session(), rule_id, actor=actor())


@blp.route("/earning-rules/<id:rule_id>/versions")
class EarningRuleVersions(MethodView):
    @auth.require("admin")
    @blp.response(200, EarningRuleVersionSchema(many=True))
    def get(self, rule_id: int) -> Any:
        """Every definition the rule had, oldest first (a deleted rule's too)"""
        return earning_rules.versions_of(db.session(), rule_id)
