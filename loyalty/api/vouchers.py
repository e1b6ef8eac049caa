"""/vouchers, /members/{id}/vouchers, /campaigns/win-back."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from loyalty import auth
from loyalty.api import actor
from loyalty.api.base import LoyaltyBlueprint, page_window
from loyalty.api.uow import transactional
from loyalty.domain import members, vouchers
from loyalty.extensions import db
from loyalty.schemas.vouchers import (
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
        # the flat answer of api.md: the voucher's fields plus applicable, discount, refusal
        for name, value in vouchers.assess(
            voucher, args["amount"], member_id=args.get("member_id")
        ).items():
            setattr(voucher, name, value)
        return voucher


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
        return vouchers.goodwill(db.session(), member_id, data, actor=actor())


@blp.route("/campaigns/win-back")
class WinBack(MethodView):
    @auth.require("admin")
    @transactional(idempotent=True)
    @blp.arguments(WinBackSchema())
    @blp.response(200, WinBackResultSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """A win_back voucher to each member with no purchase in inactive_days (dry_run counts)"""
        return vouchers.win_back(db.session(), data, actor=actor())
