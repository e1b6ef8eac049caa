"""The staff blueprint, and what every staff page uses: the signed-in account, the role
check, the actor the audit log records, one write transaction, a form read through the API's
schemas."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, redirect, render_template, request, session, url_for
from marshmallow import Schema, ValidationError
from sqlalchemy.orm import Session

from loyalty.api.uow import unit_of_work
from loyalty.domain import audit, program, staff
from loyalty.domain.context import Actor
from loyalty.errors import Forbidden, ValidationFailed
from loyalty.extensions import db
from loyalty.models import StaffAccount
from loyalty.models.types import utcnow
from loyalty.web.base import PageBlueprint
from loyalty.web.staff import words

F = TypeVar("F", bound=Callable[..., Any])

bp = PageBlueprint("staff", __name__, url_prefix="/staff")


@bp.errorhandler(Forbidden)
def _forbidden(_exc: Forbidden) -> Any:
    """A page the role does not open: said in the back office's layout, its menu kept."""
    return render_template("staff/forbidden.html"), 403


#: the session's keys: the account, its token (changes with the password), when signed in
ACCOUNT_KEY, TOKEN_KEY, SINCE_KEY = "staff_id", "staff_token", "staff_since"


def sign_in(account: StaffAccount) -> None:
    """A fresh session for `account` (nothing of the one before is kept, the CSRF token
    included; the language chosen stays)."""
    language = session.get("lang")
    session.clear()
    if language is not None:
        session["lang"] = language
    session[ACCOUNT_KEY] = account.id
    session[TOKEN_KEY] = staff.session_token(account)
    session[SINCE_KEY] = utcnow().timestamp()


def sign_out() -> None:
    for key in (ACCOUNT_KEY, TOKEN_KEY, SINCE_KEY, "csrf_token"):
        session.pop(key, None)


def current_staff() -> StaffAccount | None:
    """The signed-in account of this request (looked up once); None when nobody is, when the
    session is older than LOYALTY_STAFF_SESSION_HOURS or the password changed since."""
    if "staff" in g:
        return g.staff
    account = None
    since = session.get(SINCE_KEY)
    hours = current_app.config["LOYALTY_STAFF_SESSION_HOURS"]
    if isinstance(since, int | float) and utcnow().timestamp() - since < hours * 3600:
        account = staff.get_signed_in(
            db.session(), session.get(ACCOUNT_KEY), session.get(TOKEN_KEY)
        )
    g.staff = account
    return account


def _come_back_to() -> str | None:
    """Where sign-in leads back to: the page asked for; after a form was sent (the session had
    ended), the member's page it was about, or the start page (a form's URL answers POST only)."""
    if request.method in ("GET", "HEAD"):
        return request.full_path.rstrip("?")
    member_id = (request.view_args or {}).get("member_id")
    return url_for("staff.member", member_id=member_id) if member_id is not None else None


def requires(permission: str) -> Callable[[F], F]:
    """The page needs a signed-in account whose role has `permission`: the sign-in page
    otherwise, 403 for a role without it."""

    def decorator(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            account = current_staff()
            if account is None:
                return redirect(url_for("staff.sign_in", next=_come_back_to()))
            if not staff.may(account.role, permission):
                raise Forbidden("Your role does not allow this page.")
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def actor() -> Actor:
    """The signed-in staff member, as the audit log records them."""
    account = current_staff()
    assert account is not None
    return staff.actor_for(account)


@contextmanager
def write() -> Iterator[Session]:
    """One write transaction (the API's unit of work): committed at the end, rolled back on
    any error."""
    with unit_of_work() as tx:
        yield tx


def use_form_nonce(tx: Session) -> None:
    """The one-time form's nonce (hidden field `form_nonce`), used up in the action's
    transaction `tx`: a second submit of the same form is refused (Conflict) and changes
    nothing."""
    account = current_staff()
    assert account is not None
    staff.use_form_nonce(tx, tx.merge(account), request.form.get("form_nonce", ""))


def record_read(target_type: str, target_id: object, detail: dict[str, Any] | None = None) -> None:
    """A staff read of personal data, recorded as the API records it (`audit.record_read`), in
    a short write transaction of its own."""
    who = actor()
    with write() as tx:
        audit.record_read(tx, who, target_type, target_id, detail)


def load_form(
    schema: Schema,
    form: Mapping[str, Any],
    *,
    ints: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The form's fields read by the API's schema (one set of rules). `ints`: digits become
    numbers; `optional`: a blank field is left out (null where the schema allows it is asked
    for by the page itself). Raises ValidationFailed with the schema's messages."""
    data: dict[str, Any] = {}
    for key, raw in form.items():
        if key in ("csrf_token", "form_nonce"):
            continue
        value: Any = raw.strip() if isinstance(raw, str) else raw
        if value == "" and key in optional:
            continue
        if key in ints and isinstance(value, str) and value != "":
            value = whole_number(value, key)
        data[key] = value
    return schema_load(schema, data)


#: a whole number as a form sends it: ASCII digits, an optional sign (no "1_0", no "١٢")
_WHOLE = re.compile(r"[+-]?[0-9]{1,18}", re.ASCII)


def whole_number(raw: str, field: str) -> int:
    """`raw` as an int, as the API's JSON takes one: ASCII digits with an optional sign (Python's
    int() would also take "1_0" and other scripts' digits). Raises ValidationFailed."""
    if not _WHOLE.fullmatch(raw):
        raise ValidationFailed("Not a whole number.", field=field)
    return int(raw)


def schema_load(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    """`schema.load(data)`; its messages as a ValidationFailed (422)."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        messages = exc.normalized_messages()
        errors = {
            str(k): [str(m) for m in (v if isinstance(v, list) else [v])]
            for k, v in messages.items()
        }
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
        raise ValidationFailed(detail, errors=errors) from None


@bp.app_template_filter("money")
def money(amount: int | None, currency: str | None = None) -> str:
    """Minor units as the programme's currency shows them: 1234 → "EUR 12.34"."""
    if amount is None:
        return "\u2013"
    if "program_money" not in g:
        current = program.get_program(db.session())
        g.program_money = (current.currency, current.currency_exponent)
    code, exponent = g.program_money
    code = currency or code
    return f"{code} {amount / 10**exponent:,.{exponent}f}"


@bp.app_template_filter("word")
def _word(code: object) -> str:
    """A status, kind or segment code as a word of the reader's language."""
    return words.word(code)


@bp.context_processor
def _staff_context() -> dict[str, Any]:
    account = current_staff()
    role = account.role if account is not None else None
    return {
        "form_nonce": staff.new_form_nonce,
        "staff_account": account,
        "may": lambda permission: role is not None and staff.may(role, permission),
    }
