"""/rewards and /redemptions."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from loyalty import auth
from loyalty.api import actor
from loyalty.api.base import LoyaltyBlueprint, page_window
from loyalty.api.uow import apply_due_expiries, transactional
from loyalty.domain import members, redemptions, rewards
from loyalty.errors import Forbidden
from loyalty.extensions import db
from loyalty.schemas.rewards import (
    CatalogueArgs,
    RedemptionConfirmSchema,
    RedemptionCreateSchema,
    RedemptionSchema,
    RewardCreateSchema,
    RewardSchema,
    RewardUpdateSchema,
)

blp = LoyaltyBlueprint("rewards", __name__, description="Rewards and redemptions")


def _may_read_members(named: dict[str, Any]) -> None:
    """Whether a member exists, and what they can afford, is about that member: a `reports` key
    reads the catalogue only. Raises Forbidden (403), naming the fields, before any lookup."""
    if not auth.current_client().scopes & {"pos", "webshop", "admin"}:
        message = "Naming a member needs one of the scopes: pos, webshop."
        raise Forbidden(message, errors={field: [message] for field in named})


@blp.route("/rewards")
class Rewards(MethodView):
    @auth.require(*auth.ALL)
    @blp.arguments(CatalogueArgs(), location="query")
    @blp.response(200, RewardSchema(many=True))
    @blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> Any:
        """The active catalogue, cheapest first; naming a member (pos, webshop) adds `affordable`"""
        member = None
        if args:
            _may_read_members(args)
            member = members.resolve_member(db.session(), **args, for_use=False)
            apply_due_expiries(member.id)
            member = members.get_member(db.session(), member.id)
        offset, limit = page_window(pagination_parameters)
        items, total = rewards.catalogue(db.session(), member=member, offset=offset, limit=limit)
        pagination_parameters.item_count = total
        return items

    @auth.require("admin")
    @transactional(idempotent=True)
    @blp.arguments(RewardCreateSchema())
    @blp.response(201, RewardSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Add a reward: amount_off (minor units), percent_off (1-100) or free_item (sku)"""
        return rewards.create_reward(db.session(), data, actor=actor())


@blp.route("/rewards/<id:reward_id>")
class RewardById(MethodView):
    @auth.require(*auth.ALL)
    @blp.response(200, RewardSchema)
    def get(self, reward_id: int) -> Any:
        """A reward"""
        return rewards.get_reward(db.session(), reward_id)

    @auth.require("admin")
    @transactional()
    @blp.arguments(RewardUpdateSchema(), required=False)
    @blp.response(200, RewardSchema)
    def patch(self, data: dict[str, Any], reward_id: int) -> Any:
        """Change a reward (deactivate with active: false)"""
        return rewards.update_reward(db.session(), reward_id, data or {}, actor=actor())


@blp.route("/redemptions")
class Redemptions(MethodView):
    @auth.require("pos", "webshop")
    @transactional(idempotent=True)
    @blp.arguments(RedemptionCreateSchema())
    @blp.response(201, RedemptionSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Reserve a reward's points (checkout), or redeem at once with instant: true (till)"""
        return redemptions.reserve(db.session(), data, actor=actor())


@blp.route("/redemptions/<id:redemption_id>")
class RedemptionById(MethodView):
    @auth.require("pos", "webshop", "admin")
    @blp.response(200, RedemptionSchema)
    def get(self, redemption_id: int) -> Any:
        """The redemption's state; an overdue reservation reads expired, its points available"""
        redemption = redemptions.get_redemption(db.session(), redemption_id, actor=actor())
        apply_due_expiries(redemption.member_id)
        return redemption


@blp.route("/redemptions/<id:redemption_id>/confirm")
class RedemptionConfirm(MethodView):
    @auth.require("pos", "webshop")
    @transactional(idempotent=True)
    @blp.arguments(RedemptionConfirmSchema(), required=False)
    @blp.response(200, RedemptionSchema)
    def post(self, data: dict[str, Any], redemption_id: int) -> Any:
        """reserved → redeemed: the points leave the account"""
        return redemptions.confirm(db.session(), redemption_id, data or {}, actor=actor())


@blp.route("/redemptions/<id:redemption_id>/cancel")
class RedemptionCancel(MethodView):
    @auth.require("pos", "webshop", "admin")
    @transactional(idempotent=True)
    @blp.response(200, RedemptionSchema)
    def post(self, redemption_id: int) -> Any:
        """reserved → released: the points are available again"""
        return redemptions.cancel(db.session(), redemption_id, actor=actor())
