"""/vouchers, /members/{id}/vouchers, /campaigns/win-back, /campaigns/{id}."""

from __future__ import annotations

from typing import Any

from flask import jsonify, url_for
from flask.views import MethodView

from loyalty import auth
from loyalty.api import actor, limits
from loyalty.api.base import LoyaltyBlueprint, page_window
from loyalty.api.uow import transactional
from loyalty.domain import campaigns, members, vouchers
from loyalty.domain.views import Annotated
from loyalty.extensions import db
from loyalty.schemas.vouchers import (
    CampaignSchema,
    GoodwillSchema,
    VoucherCheckArgs,
    VoucherCheckSchema,
    VoucherRedeemResultSchema,
    VoucherRedeemSchema,
    VoucherSchema,
    VoucherVoidSchema,
    WinBackResultSchema,
    WinBackSchema,
)

blp = LoyaltyBlueprint("vouchers", __name__, description="Vouchers (return credit)")


@blp.route("/vouchers/<string:code>")
class VoucherByCode(MethodView):
    @auth.require("pos", "webshop", "admin")
    @blp.arguments(VoucherCheckArgs(), location="query")
    @blp.response(200, VoucherCheckSchema)
    def get(self, args: dict[str, Any], code: str) -> Any:
        """The voucher; with ?amount= whether it applies to that basket and the discount"""
        voucher = vouchers.get_voucher(db.session(), code)
        if "amount" not in args:
            return voucher
        # the flat answer: the voucher's fields plus applicable, discount, refusal
        assessment = vouchers.assess(voucher, args["amount"], member_id=args.get("member_id"))
        return Annotated(voucher, **assessment)


@blp.route("/vouchers/<string:code>/redeem")
class VoucherRedeem(MethodView):
    @auth.require("pos", "webshop")
    @transactional(idempotent=True)
    @blp.arguments(VoucherRedeemSchema())
    @blp.response(200, VoucherRedeemResultSchema)
    def post(self, data: dict[str, Any], code: str) -> Any:
        """Use the voucher once on an order: the discount to apply"""
        if data.get("card_number") is not None or data.get("member_id") is not None:
            data["member_id"] = members.resolve_member(
                db.session(),
                card_number=data.get("card_number"),
                member_id=data.get("member_id"),
                for_use=False,
            ).id
        voucher, discount = vouchers.redeem(db.session(), code, data, actor=actor())
        return {
            "code": voucher.display_code,
            "discount": discount,
            "amount_after": data["amount"] - discount,
            "voucher": voucher,
        }


@blp.route("/vouchers/<string:code>/void")
class VoucherVoid(MethodView):
    @auth.require("admin")
    @transactional(idempotent=True)
    @blp.arguments(VoucherVoidSchema())
    @blp.response(200, VoucherSchema)
    def post(self, data: dict[str, Any], code: str) -> Any:
        """Withdraw an unused voucher (audit-logged with the reason)"""
        return vouchers.void(db.session(), code, data["reason"], actor=actor())


@blp.route("/members/<id:member_id>/vouchers")
class MemberVouchers(MethodView):
    @auth.require("pos", "webshop", "admin")
    @blp.response(200, VoucherSchema(many=True))
    @blp.paginate()
    def get(self, member_id: int, pagination_parameters: Any) -> Any:
        """The member's vouchers, newest first"""
        members.get_member(db.session(), member_id)
        offset, limit = page_window(pagination_parameters)
        items, total = vouchers.list_for_member(db.session(), member_id, offset=offset, limit=limit)
        pagination_parameters.item_count = total
        return items

    @auth.require("admin")
    @transactional(idempotent=True)
    @blp.arguments(GoodwillSchema())
    @blp.response(201, VoucherSchema)
    def post(self, data: dict[str, Any], member_id: int) -> Any:
        """A goodwill voucher after a complaint (audit-logged with the reason)"""
        members.get_member(db.session(), member_id)
        return vouchers.goodwill(db.session(), member_id, data, actor=actor(), limits=limits())


@blp.route("/campaigns/win-back")
class WinBack(MethodView):
    @auth.require("admin")
    @transactional(idempotent=True)
    @blp.arguments(WinBackSchema())
    @blp.response(
        202,
        CampaignSchema,
        description="The campaign, pending; its job issues the vouchers",
        headers={"Location": {"description": "The campaign", "schema": {"type": "string"}}},
    )
    @blp.alt_response(200, schema=WinBackResultSchema, description="dry_run: the counts only")
    def post(self, data: dict[str, Any]) -> Any:
        """Start a win-back campaign (202), or count what it would do (dry_run: 200)

        A win_back voucher to each member whose last purchase is more than inactive_days ago,
        who holds no open win-back voucher, was given none by this campaign and is not held out
        of it; holdout_percent of them (deterministic by member and campaign) are recorded as the
        holdout instead.

        With dry_run the counts (eligible, issued, holdout) come back at once, 200, and nothing
        is written. Otherwise the campaign is created and the answer is 202 with the campaign
        (status pending, counts 0) and a Location: a background job issues the vouchers in
        batches; GET /campaigns/{campaign_id} follows its status and counts. (Until campaigns
        ran as jobs, this answered 200 with the final counts.)
        """
        if data["dry_run"]:
            result = vouchers.win_back_preview(db.session(), data)
            return jsonify(WinBackResultSchema().dump(result))
        campaign = campaigns.create_win_back(db.session(), data, actor=actor())
        campaigns.run_after_commit(db.session(), campaign.id)
        location = url_for("vouchers.CampaignById", campaign_id=campaign.id)
        return campaign, 202, {"Location": location}


@blp.route("/campaigns/<id:campaign_id>")
class CampaignById(MethodView):
    @auth.require("admin")
    @blp.response(200, CampaignSchema)
    def get(self, campaign_id: int) -> Any:
        """A campaign: its status, and what it has issued so far"""
        return campaigns.get_campaign(db.session(), campaign_id)
