"""Members: find one, their page, and the actions on them (each through the domain function
the API's endpoint calls, audit-logged under the staff member's name)."""

from __future__ import annotations

import re
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from loyalty.api import limits, settings
from loyalty.api.uow import apply_due_expiries
from loyalty.domain import backoffice, members, purchases, vouchers
from loyalty.errors import DomainError, ValidationFailed
from loyalty.extensions import db
from loyalty.models.types import utcnow
from loyalty.schemas.members import CardBlockSchema, MemberSearchSchema, MemberUpdateSchema
from loyalty.schemas.purchases import AdjustmentSchema
from loyalty.schemas.vouchers import GoodwillSchema
from loyalty.web.staff.blueprint import (
    actor,
    bp,
    load_form,
    record_read,
    requires,
    schema_load,
    use_form_nonce,
    write,
)
from loyalty.web.staff.words import explain

#: the personal data a staff member may edit (MemberUpdateSchema's fields)
EDITABLE = ("name", "email", "phone", "external_ref")
_CARD = re.compile(r"^[\d\s-]{6,30}$")


def search_terms(by: str, term: str) -> dict[str, str]:
    """The search the form asks for: by card number, e-mail, phone or name; `auto` guesses
    from the term (digits: a card, typed or scanned; an @: an e-mail; a leading +: a phone;
    else part of a name)."""
    term = term.strip()
    if by == "auto":
        if "@" in term:
            by = "email"
        elif term.startswith("+"):
            by = "phone"
        elif _CARD.match(term):
            by = "card_number"
        else:
            by = "q"
    if by not in ("card_number", "email", "phone", "q"):
        raise ValidationFailed("Search by card, e-mail, phone or name.", field="by")
    if not term:
        raise ValidationFailed("Type what to search for.", field="term")
    if by == "card_number":
        term = re.sub(r"[\s-]", "", term)
    return {by: term}


def _run_search(terms: dict[str, str]) -> tuple[dict[str, str], list[Any], int]:
    loaded = load_form(MemberSearchSchema(), terms)
    found, total = members.search_members(
        db.session(), **loaded, settings=settings(), offset=0, limit=50
    )
    return loaded, found, total


def _find(by: str, term: str) -> tuple[dict[str, str], list[Any], int]:
    """The search's terms and what it found. `auto` on digits tries a card number first; when
    that is not a valid card number or finds nobody, a phone number written without + (read
    in LOYALTY_PHONE_REGION) is tried too."""
    terms = search_terms(by, term)
    if by != "auto" or "card_number" not in terms:
        return _run_search(terms)
    try:
        as_card = _run_search(terms)
    except DomainError:
        as_card = None
    if as_card is not None and as_card[1]:
        return as_card
    try:
        return _run_search({"phone": term.strip()})
    except DomainError:
        if as_card is not None:
            return as_card
        return _run_search(terms)  # the card number's refusal, which is what was typed


@bp.route("/members", methods=["GET", "POST"])
@requires("members")
def search() -> Any:
    """The search form; a POST searches (the terms stay out of URLs and logs), recorded in the
    audit log as the API's search is (which kinds of term, whom it found). A card number that
    finds one member opens their page."""
    if request.method == "GET":
        return render_template("staff/search.html", results=None, by="auto", term="")
    by, term = request.form.get("by", "auto"), request.form.get("term", "")
    try:
        terms, found, total = _find(by, term)
    except DomainError as exc:
        return render_template(
            "staff/search.html", results=None, by=by, term=term, error=explain(exc)
        ), exc.status
    record_read("members", "search", {"by": sorted(terms), "member_ids": [m.id for m in found]})
    if "card_number" in terms and len(found) == 1:
        return redirect(url_for("staff.member", member_id=found[0].id), 303)
    return render_template("staff/search.html", results=found, total=total, by=by, term=term)


def _member_page(member_id: int, status: int = 200, **context: Any) -> Any:
    """The member's page (a read of personal data: audit-logged)."""
    apply_due_expiries(member_id)
    page = backoffice.member_page(db.session(), member_id, utcnow())
    record_read("member", member_id)
    return render_template("staff/member.html", page=page, m=page.member, **context), status


@bp.get("/members/<id:member_id>")
@requires("members")
def member(member_id: int) -> Any:
    return _member_page(member_id)


def _refused(member_id: int, exc: DomainError, form: str) -> Any:
    """The member's page again, the refusal shown beside the form that was sent."""
    return _member_page(
        member_id, exc.status, error=explain(exc), failed_form=form, sent=request.form
    )


def _back(member_id: int) -> Any:
    target = request.form.get("next")
    if target == "inbox":
        return redirect(url_for("staff.inbox"), 303)
    return redirect(url_for("staff.member", member_id=member_id), 303)


@bp.post("/members/<id:member_id>/adjust")
@requires("members")
def adjust(member_id: int) -> Any:
    """Correct points (±) with a required reason: `purchases.adjust`, as POST
    /members/{id}/adjustments."""
    try:
        data = load_form(AdjustmentSchema(), request.form, ints=("points",))
        with write() as tx:
            use_form_nonce(tx)
            entry = purchases.adjust(
                tx, member_id, data["points"], data["reason"], actor=actor(), limits=limits()
            )
            balance = entry.balance_after
    except DomainError as exc:
        return _refused(member_id, exc, "adjust")
    flash(
        _(
            "Adjusted by %(points)+d points; the balance is now %(balance)d.",
            points=data["points"],
            balance=balance,
        ),
        "good",
    )
    return _back(member_id)


@bp.post("/members/<id:member_id>/goodwill")
@requires("members")
def goodwill(member_id: int) -> Any:
    """A goodwill voucher with its reason: `vouchers.goodwill`, as POST /members/{id}/vouchers."""
    form = {k: v for k, v in request.form.items() if k != "next"}
    try:
        data = load_form(
            GoodwillSchema(),
            form,
            ints=("value", "valid_days", "min_spend"),
            optional=("min_spend",),
        )
        with write() as tx:
            use_form_nonce(tx)
            voucher = vouchers.goodwill(tx, member_id, data, actor=actor(), limits=limits())
            code = voucher.display_code
    except DomainError as exc:
        if request.form.get("next") == "inbox":
            flash(explain(exc), "bad")
            return redirect(url_for("staff.inbox"), 303)
        return _refused(member_id, exc, "goodwill")
    flash(_("Goodwill voucher %(code)s issued.", code=code), "good")
    return _back(member_id)


@bp.post("/members/<id:member_id>/cards/<card:card_number>/replace")
@requires("members")
def replace_card(member_id: int, card_number: str) -> Any:
    """Block a lost or stolen card and issue a new one, in one transaction:
    `members.replace_card` (`block_card` then `issue_card`: POST /cards/{number}/block, POST
    /members/{id}/cards), the member locked first."""
    try:
        sent = request.form.get("reason", "")
        reason = schema_load(CardBlockSchema(), {"reason": sent}).get("reason")
        with write() as tx:
            use_form_nonce(tx)
            new = members.replace_card(
                tx, member_id, card_number, reason, settings=settings(), actor=actor()
            )
            number = new.number
    except DomainError as exc:
        return _refused(member_id, exc, "card")
    flash(_("Card %(old)s blocked; new card %(new)s issued.", old=card_number, new=number), "good")
    return _back(member_id)


def _changes(member: Any, form: Any) -> dict[str, Any]:
    """The personal data the edit form changes (blank: cleared), and marketing consent."""
    sent = {f: form.get(f, "").strip() or None for f in EDITABLE}
    sent["marketing_consent"] = form.get("marketing_consent") == "on"
    return {k: v for k, v in sent.items() if getattr(member, k) != v}


@bp.route("/members/<id:member_id>/edit", methods=["GET", "POST"])
@requires("members")
def edit(member_id: int) -> Any:
    """Edit personal data: the form; then a confirmation of what changes (before → after);
    then `members.update_member` (PATCH /members/{id})."""
    member = members.get_member(db.session(), member_id)
    if request.method == "GET":
        record_read("member", member_id)
        return render_template("staff/edit.html", m=member, form=None, changes=None)
    changes = _changes(member, request.form)
    if not changes:
        flash(_("Nothing changed."), "good")
        return redirect(url_for("staff.member", member_id=member_id), 303)
    if request.form.get("confirm") != "yes":
        record_read("member", member_id)  # the review shows the data as it is
        return render_template("staff/edit.html", m=member, form=request.form, changes=changes)
    try:
        data = schema_load(MemberUpdateSchema(), changes)
        with write() as tx:
            locked = members.get_member(tx, member_id, for_update=True)
            members.update_member(tx, locked, data, settings=settings(), actor=actor())
    except DomainError as exc:
        record_read("member", member_id)
        return render_template(
            "staff/edit.html", m=member, form=request.form, changes=None, error=explain(exc)
        ), exc.status
    flash(_("Personal data changed."), "good")
    return redirect(url_for("staff.member", member_id=member_id), 303)


@bp.route("/members/<id:member_id>/erase", methods=["GET", "POST"])
@requires("members")
def erase(member_id: int) -> Any:
    """Erase the member's personal data (right to be forgotten), after a confirmation:
    `members.erase_member` (DELETE /members/{id})."""
    member = members.get_member(db.session(), member_id)
    if request.method == "GET" or request.form.get("confirm") != "ERASE":
        error = _("Type ERASE to confirm.") if request.method == "POST" else None
        status = 422 if error else 200
        record_read("member", member_id)  # the page shows whom it erases
        return render_template("staff/erase.html", m=member, error=error), status
    with write() as tx:
        locked = members.get_member(tx, member_id, for_update=True)
        members.erase_member(tx, locked, actor=actor())
    flash(_("The member's personal data was erased."), "good")
    return redirect(url_for("staff.member", member_id=member_id), 303)
