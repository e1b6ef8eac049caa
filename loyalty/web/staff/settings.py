"""The programme's settings and the rewards catalogue, for admins: through the domain
functions of PUT /program (`program.update_program`) and of POST, PATCH /rewards
(`rewards.create_reward`, `rewards.update_reward`), read by the API's schemas."""

from __future__ import annotations

import json
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from loyalty.domain import program, rewards
from loyalty.errors import Conflict, DomainError, ValidationFailed
from loyalty.extensions import db
from loyalty.models import Program, Reward
from loyalty.models.program import ROUNDING_MODES
from loyalty.schemas.program import ProgramUpdateSchema
from loyalty.schemas.rewards import RewardCreateSchema, RewardUpdateSchema
from loyalty.web.staff.blueprint import (
    actor,
    bp,
    load_form,
    requires,
    schema_load,
    whole_number,
    write,
)
from loyalty.web.staff.words import explain

#: the programme's settings the form shows as plain fields (the rest as JSON)
NUMBERS = (
    "points_per_unit",
    "points_expire_after_days",
    "pending_days",
    "reservation_minutes",
    "tier_grace_days",
)
TEXTS = ("name", "currency", "rounding", "tier_window", "tier_downgrade", "timezone")
JSON_FIELDS = ("tiers", "welcome_policy", "come_back_policy")
#: blank means null (turned off)
NULLABLE = ("points_expire_after_days", "pending_days", "welcome_policy", "come_back_policy")
REWARD_NUMBERS = ("value", "points_cost", "stock", "per_member_limit")


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (json.loads takes them): refused like any bad JSON."""
    raise ValueError(name)


def _program_changes(current: Any, form: Any) -> dict[str, Any]:
    """The fields the form changes (only those: PUT replaces the fields given), read by
    ProgramUpdateSchema."""
    sent: dict[str, Any] = {}
    for name in (*NUMBERS, *TEXTS):
        raw = form.get(name, "").strip()
        if raw == "" and name in NULLABLE:
            sent[name] = None
        elif name in NUMBERS:
            sent[name] = whole_number(raw, name)
        else:
            sent[name] = raw
    for name in JSON_FIELDS:
        raw = form.get(name, "").strip()
        try:
            sent[name] = json.loads(raw, parse_constant=_no_constant) if raw else None
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise ValidationFailed("Not valid JSON.", field=name) from None
    changed = {k: v for k, v in sent.items() if getattr(current, k) != v}
    return schema_load(ProgramUpdateSchema(), changed)


@bp.route("/program", methods=["GET", "POST"])
@requires("settings")
def program_settings() -> Any:
    """The programme's settings; a POST changes the fields that differ (audit-logged; a new
    tier table recomputes the members' tiers)."""
    current = program.get_program(db.session())
    if request.method == "GET":
        return _program_page(current)
    try:
        changes = _program_changes(current, request.form)
        if not changes:
            flash(_("Nothing changed."), "good")
            return redirect(url_for("staff.program_settings"), 303)
        with write() as tx:
            _check_version(tx, request.form.get("version", ""))
            program.update_program(tx, changes, actor())
    except DomainError as exc:
        db.session.rollback()
        shown = program.get_program(db.session())
        # moved since: show the programme as it is now, not the stale form
        form = None if "version" in exc.errors else request.form
        return _program_page(shown, explain(exc), form), exc.status
    flash(_("Programme changed: %(fields)s.", fields=", ".join(sorted(changes))), "good")
    return redirect(url_for("staff.program_settings"), 303)


def version_of(current: Program) -> str:
    """What the form carries (hidden `version`) to tell whether the programme moved since."""
    return current.updated_at.isoformat() if current.updated_at is not None else ""


def _check_version(tx: Any, sent: str) -> None:
    """The programme, locked, must be as the form showed it: else another admin changed it since
    and saving this form would undo their change silently. Raises Conflict."""
    locked = tx.get(Program, 1, with_for_update=True, populate_existing=True)
    if locked is not None and sent != version_of(locked):
        raise Conflict(
            "Another change was saved since this form was opened: look at the programme "
            "again, then make your change.",
            field="version",
        )


def _program_page(current: Any, error: str | None = None, form: Any = None) -> Any:
    as_json = {
        name: json.dumps(getattr(current, name), indent=2, ensure_ascii=False)
        if getattr(current, name) is not None
        else ""
        for name in JSON_FIELDS
    }
    return render_template(
        "staff/program.html",
        p=current,
        as_json=as_json,
        rounding_modes=ROUNDING_MODES,
        version=version_of(current),
        error=error,
        form=form,
    )


def _reward_form(schema: Any, form: Any) -> dict[str, Any]:
    """The reward's fields from the form. A change (the row's form, with `active`): a blank stock
    or limit means none (null); a new reward: left out."""
    data: dict[str, Any] = {k: v for k, v in form.items() if k in schema.fields}
    changing = "active" in schema.fields
    if changing:
        data["active"] = form.get("active") == "on"
        for name in ("stock", "per_member_limit"):
            if name in data and not str(data[name]).strip():
                data[name] = None
    return load_form(
        schema,
        data,
        ints=REWARD_NUMBERS,
        optional=("value", "sku", "stock", "per_member_limit", "active_from", "active_until"),
    )


@bp.route("/rewards", methods=["GET", "POST"])
@requires("settings")
def rewards_catalogue() -> Any:
    """Every reward (inactive ones too); a POST adds one (`rewards.create_reward`)."""
    if request.method == "POST":
        try:
            data = _reward_form(RewardCreateSchema(), request.form)
            with write() as tx:
                name = rewards.create_reward(tx, data, actor=actor()).name
        except DomainError as exc:
            return _rewards_page(explain(exc), request.form), exc.status
        flash(_("Reward %(name)s added.", name=name), "good")
        return redirect(url_for("staff.rewards_catalogue"), 303)
    return _rewards_page()


def _rewards_page(error: str | None = None, form: Any = None) -> Any:
    items = db.session.scalars(select(Reward).order_by(Reward.active.desc(), Reward.points_cost))
    return render_template("staff/rewards.html", rewards=list(items), error=error, form=form)


@bp.post("/rewards/<id:reward_id>")
@requires("settings")
def reward_update(reward_id: int) -> Any:
    """Change a reward's name, cost, stock, limit or whether it is active
    (`rewards.update_reward`)."""
    try:
        data = _reward_form(RewardUpdateSchema(), request.form)
        with write() as tx:
            rewards.update_reward(tx, reward_id, data, actor=actor())
    except DomainError as exc:
        return _rewards_page(explain(exc), None), exc.status
    flash(_("Reward changed."), "good")
    return redirect(url_for("staff.rewards_catalogue"), 303)
