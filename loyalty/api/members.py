"""/members: enrol, read, change, erase, search, issue cards."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from loyalty import auth
from loyalty.api import actor, limits, settings
from loyalty.api.audit import note_read
from loyalty.api.base import LoyaltyBlueprint, page_window
from loyalty.api.uow import apply_due_expiries, transactional
from loyalty.domain import export, lots, members, purchases, segments, tiers
from loyalty.domain.views import Redacted
from loyalty.extensions import db
from loyalty.models import Member
from loyalty.models.types import utcnow
from loyalty.schemas.members import (
    ADMIN_ONLY_FIELDS,
    CardIssueSchema,
    CardSchema,
    EnrolledMemberSchema,
    ExpiringArgs,
    ExpiringSchema,
    MemberCreateSchema,
    MemberDetailSchema,
    MemberExportSchema,
    MemberSchema,
    MemberSearchArgs,
    MemberSearchSchema,
    MemberUpdateSchema,
)
from loyalty.schemas.purchases import AdjustmentResultSchema, AdjustmentSchema, LedgerEntrySchema

blp = LoyaltyBlueprint("members", __name__, description="Members and their cards")


def _as_caller_may_read(member: Member, **extra: Any) -> Redacted:
    """The member with `extra` beside it; without the admin-only fields (contact data and
    consent) unless the key is admin: pos and webshop read the card lookup's view of a member."""
    hidden = () if "admin" in auth.current_client().scopes else ADMIN_ONLY_FIELDS
    return Redacted(member, hidden, **extra)


@blp.route("/members")
class Members(MethodView):
    @auth.require("admin")
    @blp.arguments(MemberSearchArgs(), location="query")
    @blp.response(200, MemberSchema(many=True))
    @blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> Any:
        """Search members by e-mail, phone, card number or part of the name (newest first).
        Prefer POST /members/search: it keeps the terms out of URLs"""
        return _search(args, pagination_parameters)

    @auth.require("pos", "webshop", "admin")
    @transactional(idempotent=True)
    @blp.arguments(MemberCreateSchema(), required=False)
    @blp.response(201, EnrolledMemberSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Enrol a customer: a member with a first card (a new one, or the pre-printed one given)
        and the welcome voucher, if the programme gives one"""
        member, welcome = members.enrol_member(
            db.session(), data or {}, settings=settings(), actor=actor()
        )
        return _as_caller_may_read(
            member, vouchers_issued=[welcome.issued_summary] if welcome else []
        )


def _search(terms: dict[str, Any], pagination_parameters: Any) -> list[Member]:
    offset, limit = page_window(pagination_parameters)
    items, total = members.search_members(
        db.session(), **terms, settings=settings(), offset=offset, limit=limit
    )
    pagination_parameters.item_count = total
    # a staff read of personal data: which kinds of term, and whom it found (never the terms)
    note_read("members", "search", {"by": sorted(terms), "member_ids": [m.id for m in items]})
    return items


@blp.route("/members/search")
class MemberSearch(MethodView):
    @auth.require("admin")
    @blp.arguments(MemberSearchSchema(), required=False)
    @blp.response(200, MemberSchema(many=True))
    @blp.paginate()
    def post(self, terms: dict[str, Any], pagination_parameters: Any) -> Any:
        """Search members, the terms in the body (e-mail addresses and phone numbers stay out
        of URLs and logs): every term given must match; newest first"""
        return _search(terms or {}, pagination_parameters)


@blp.route("/members/<id:member_id>/export")
class MemberExport(MethodView):
    @auth.require("admin")
    @blp.response(200, MemberExportSchema)
    def get(self, member_id: int) -> Any:
        """Everything held about the member (the right of access), as JSON"""
        note_read("member", member_id, {"export": True})
        return export.member_export(db.session(), member_id)


@blp.route("/members/<id:member_id>")
class MemberById(MethodView):
    @auth.require("pos", "webshop", "admin")
    @blp.response(200, MemberDetailSchema)
    def get(self, member_id: int) -> Any:
        """A member, their cards, balance and segment (as of today)"""
        apply_due_expiries(member_id)
        member = members.get_member(db.session(), member_id)
        segment = segments.segment_of(db.session(), member.id, utcnow().date())
        progress = tiers.progress(db.session(), member, utcnow())
        if "admin" in auth.current_client().scopes:  # contact data: a staff read
            note_read("member", member.id)
        expiry = lots.next_expiry(db.session(), member.id)
        return _as_caller_may_read(
            member, segment=segment, tier_progress=progress, next_expiry=expiry
        )

    @auth.require("admin")
    @transactional()
    @blp.arguments(MemberUpdateSchema(), required=False)
    @blp.response(200, MemberSchema)
    def patch(self, data: dict[str, Any], member_id: int) -> Any:
        """Change personal data or marketing consent (audit-logged)"""
        member = members.get_member(db.session(), member_id, for_update=True)
        return members.update_member(
            db.session(), member, data or {}, settings=settings(), actor=actor()
        )

    @auth.require("admin")
    @transactional()
    @blp.response(204)
    def delete(self, member_id: int) -> Any:
        """Erase the member's personal data; purchases, points and cards stay"""
        member = members.get_member(db.session(), member_id, for_update=True)
        members.erase_member(db.session(), member, actor=actor())


@blp.route("/members/<id:member_id>/cards")
class MemberCards(MethodView):
    @auth.require("admin")
    @transactional(idempotent=True)
    @blp.arguments(CardIssueSchema(), required=False)
    @blp.response(201, CardSchema)
    def post(self, data: dict[str, Any], member_id: int) -> Any:
        """Issue another card (a replacement, or activate a pre-printed one)"""
        member = members.get_member(db.session(), member_id)
        number = (data or {}).get("card_number")
        return members.issue_card(db.session(), member, number, settings=settings(), actor=actor())


@blp.route("/members/<id:member_id>/adjustments")
class MemberAdjustments(MethodView):
    @auth.require("admin")
    @transactional(idempotent=True)
    @blp.arguments(AdjustmentSchema())
    @blp.response(201, AdjustmentResultSchema)
    def post(self, data: dict[str, Any], member_id: int) -> Any:
        """Correct points (±) with a reason; audit-logged with the key's name"""
        return purchases.adjust(
            db.session(), member_id, data["points"], data["reason"], actor=actor(), limits=limits()
        )


@blp.route("/members/<id:member_id>/expiring")
class MemberExpiring(MethodView):
    @auth.require("pos", "webshop", "admin")
    @blp.arguments(ExpiringArgs(), location="query")
    @blp.response(200, ExpiringSchema)
    def get(self, args: dict[str, Any], member_id: int) -> Any:
        """The member's points that expire within `days` days, lot by lot, soonest first"""
        return lots.expiring(db.session(), member_id, args["days"], utcnow())


@blp.route("/members/<id:member_id>/ledger")
class MemberLedger(MethodView):
    @auth.require("admin")
    @blp.response(200, LedgerEntrySchema(many=True))
    @blp.paginate()
    def get(self, member_id: int, pagination_parameters: Any) -> Any:
        """The member's ledger entries, newest first, each with balance_after"""
        offset, limit = page_window(pagination_parameters)
        items, total = purchases.list_entries(db.session(), member_id, offset=offset, limit=limit)
        pagination_parameters.item_count = total
        return items
