"""/cards: the till's lookup, and blocking a lost card."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from loyalty import auth
from loyalty.api import actor
from loyalty.api.base import LoyaltyBlueprint
from loyalty.api.uow import apply_due_expiries, transactional
from loyalty.domain import members
from loyalty.extensions import db
from loyalty.schemas.members import CardBlockSchema, CardSchema

blp = LoyaltyBlueprint("cards", __name__, description="Card lookup and blocking")


@blp.route("/cards/<card:card_number>")
class CardByNumber(MethodView):
    @auth.require("pos", "webshop", "admin")
    @blp.response(200, CardSchema)
    def get(self, card_number: str) -> Any:
        """The card, its status, its member and balance (a mistyped number: 422)"""
        card = members.get_card(db.session(), card_number)
        apply_due_expiries(card.member_id)
        return card


@blp.route("/cards/<card:card_number>/block")
class CardBlock(MethodView):
    @auth.require("admin")
    @transactional(idempotent=True)
    @blp.arguments(CardBlockSchema(), required=False)
    @blp.response(200, CardSchema)
    def post(self, data: dict[str, Any], card_number: str) -> Any:
        """Block a lost or stolen card; points stay with the member"""
        return members.block_card(
            db.session(), card_number, (data or {}).get("reason"), actor=actor()
        )
