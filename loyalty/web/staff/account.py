"""Signing in and out, and the start page (what the role may open)."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _

from loyalty.domain import staff
from loyalty.extensions import db
from loyalty.web.site import _local
from loyalty.web.staff.blueprint import bp, current_staff, write
from loyalty.web.staff.blueprint import sign_in as start_session
from loyalty.web.staff.blueprint import sign_out as end_session


@bp.get("/")
def home() -> Any:
    """The start page: the members' search for staff and admins, the dashboard for reports."""
    account = current_staff()
    if account is None:
        return redirect(url_for("staff.sign_in"))
    if staff.may(account.role, "members"):
        return redirect(url_for("staff.search"))
    return redirect(url_for("staff.dashboard"))


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    """The sign-in form; a POST checks the e-mail and password (rate-limited per address:
    LOYALTY_RATE_LIMIT_STAFF_SIGN_IN)."""
    target = _local(request.values.get("next", "")) if request.values.get("next") else None
    if request.method == "GET":
        return render_template("staff/sign_in.html", next=target or "", error=None)
    email = request.form.get("email", "")
    # the slow password check reads only: no write lock is held meanwhile (SQLite has one)
    found = staff.check_credentials(db.session(), email, request.form.get("password", ""))
    found_id = found.id if found is not None else None
    db.session.rollback()  # end the read transaction before the write one
    account = None
    if found_id is not None:
        with write() as tx:
            account = staff.record_sign_in(tx, found_id)
            if account is not None:
                start_session(account)
    if account is None:
        error = _("That e-mail and password do not match an account.")
        return render_template(
            "staff/sign_in.html", next=target or "", error=error, email=email
        ), 401
    return redirect(
        target if target and target.startswith("/staff") else url_for("staff.home"), 303
    )


@bp.post("/sign-out")
def sign_out() -> Any:
    """Ends the session, and every other session of the account: a copy of the cookie taken
    before opens nothing afterwards (a shared shop computer)."""
    account = current_staff()
    if account is not None:
        with write() as tx:
            staff.end_sessions(tx, tx.merge(account))
    end_session()
    return redirect(url_for("staff.sign_in"), 303)
