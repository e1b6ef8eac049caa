"""/f/<token>: the customer's feedback page, the link (and QR code) printed on the receipt.

One screen, three questions (NPS, CES, CSAT) and a comment, no JavaScript needed. The answers
go through the same domain function and the same rules as the API's POST /feedback/{token}
(loyalty.domain.feedback, loyalty.schemas.feedback.ScoresSchema). Once answered, the page says
thank you and offers nothing to send again; an expired link says so. Its POSTs (answers)
count against LOYALTY_RATE_LIMIT_FEEDBACK per address, like the API's link; reading the page
only against the general limits (loyalty/ratelimits.py).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from loyalty.api.uow import unit_of_work
from loyalty.domain import feedback
from loyalty.errors import FeedbackExists, FeedbackTokenExpired, NotFound
from loyalty.extensions import db
from loyalty.schemas.common import QueryArgs, unstorable
from loyalty.schemas.feedback import ScoresSchema
from loyalty.web.base import PageBlueprint

bp = PageBlueprint("feedback_page", __name__)

COMMENT_MAX = 2000
_SENT = "feedback_sent"  # the session's note of the link just answered (the thank-you's wording)


class FormScores(QueryArgs, ScoresSchema):
    """The API's ScoresSchema reading the form's text as the API reads a query string: a
    score in ASCII digits is a number, any other text is refused by its field (422)."""


def _secret() -> str:
    return str(current_app.config["SECRET_KEY"])


@bp.get("/f/<string(maxlength=200):token>")
def show(token: str) -> Any:
    """The questions; or thank you (answered); or why the link cannot be used."""
    page = _closed(token)
    if page is not None:
        return page
    return render_template("feedback/form.html", token=token, values={}, errors={})


@bp.post("/f/<string(maxlength=200):token>")
def answer(token: str) -> Any:
    """Record the answers (once), then show the thank-you (POST, redirect, GET)."""
    page = _closed(token)
    if page is not None:
        return page
    values = _form_values()
    try:
        data = FormScores().load({k: v or None for k, v in values.items()})
    except ma.ValidationError as exc:
        errors = _messages(exc.normalized_messages(), values, empty=not any(values.values()))
        return render_template("feedback/form.html", token=token, values=values, errors=errors), 422
    try:
        with unit_of_work() as tx:
            feedback.give_feedback_by_token(tx, token, data, secret=_secret())
    except FeedbackExists:
        pass  # answered in another tab a moment ago: the thank-you all the same
    session[_SENT] = token
    return redirect(url_for(".show", token=token), code=303)


def _closed(token: str) -> Any:
    """The page to show instead of the questions, if the link cannot take answers now."""
    try:
        purchase = feedback.purchase_for_token(db.session(), token, _secret())
    except NotFound:
        return _notice(_("This feedback link is not valid. Please check the address."), 404)
    except FeedbackTokenExpired:
        return _notice(
            _(
                "This feedback link has expired: answers can be given for %(days)d days "
                "after the purchase. Thank you for wanting to help.",
                days=feedback.FEEDBACK_TOKEN_DAYS,
            ),
            410,
        )
    if purchase.member.erased_at is not None:
        return _notice(_("This feedback link can no longer be used."), 410)
    if feedback.feedback_on(db.session(), purchase.id) is not None:
        just_sent = session.pop(_SENT, None) == token
        return render_template("feedback/thanks.html", just_sent=just_sent)
    return None


def _notice(message: str, status: int) -> Any:
    return render_template("feedback/notice.html", message=message), status


def _form_values() -> dict[str, str]:
    """The form's answers as text, trimmed; a line break in the comment as one character (a
    browser counts it as one for maxlength, then sends CR LF)."""
    values = {k: request.form.get(k, "").strip() for k in ("nps", "ces", "csat", "comment")}
    values["comment"] = values["comment"].replace("\r\n", "\n")
    return values


def _messages(raw: dict[str, Any], values: dict[str, str], *, empty: bool) -> dict[str, str]:
    """One message per field, in the page's language (the schema's own are English)."""
    if empty:
        return {"form": _("Please answer at least one question, or leave a comment.")}
    return {name: _message(name, values.get(name, "")) for name in raw}


def _message(name: str, value: str) -> str:
    if name != "comment":
        return _("Please choose one of the numbers.")
    if unstorable(value):
        return _("The comment contains a character that cannot be stored. Please remove it.")
    return _("The comment can be %(max)d characters at most.", max=COMMENT_MAX)
