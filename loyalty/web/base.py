"""What every page shares: cookie sessions (pages only), CSRF, the two languages, the
blueprint class pages are made with, and their HTML error pages.

The API has keys and no cookies: a request under /api/ gets no session (nothing read, nothing
written). Pages get Flask's signed cookie session, HttpOnly, SameSite=Lax, and Secure when the
request came over HTTPS (or LOYALTY_PUBLIC_URL is https). Every POST to a page blueprint needs
the session's CSRF token (Flask-WTF): `{{ csrf_token() }}` in a hidden `csrf_token` field.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    has_request_context,
    render_template,
    request,
    session,
)
from flask.sessions import SecureCookieSessionInterface
from flask_babel import Babel, get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException, InternalServerError

from loyalty.errors import DomainError

WEB_DIR = Path(__file__).resolve().parent
TRANSLATIONS_DIR = WEB_DIR / "translations"
#: The pages' languages; the first is the default for a browser that asks for neither.
LANGUAGES = ("en", "nl")
LANGUAGE_NAMES = {"en": "English", "nl": "Nederlands"}
LANGUAGE_KEY = "lang"  # the session's chosen language

log = logging.getLogger(__name__)

PAGE_NAMES: set[str] = set()  # the page blueprints' names
csrf = CSRFProtect()
babel = Babel()


class PageSessions(SecureCookieSessionInterface):
    """Flask's cookie session for pages; none under /api/ (an API with keys: no cookies)."""

    def open_session(self, app: Flask, request: Any) -> Any:
        if request.path.startswith("/api/"):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        if self.is_null_session(session):
            return None
        return super().save_session(app, session, response)

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (
            has_request_context() and request.is_secure
        )


def select_locale() -> str:
    """The language chosen with the switch (kept in the session), else the browser's."""
    if not has_request_context():
        return LANGUAGES[0]
    chosen = session.get(LANGUAGE_KEY)
    if chosen in LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(LANGUAGES, default=LANGUAGES[0]) or LANGUAGES[0]


def init_app(app: Flask) -> None:
    """Sessions, CSRF and Babel for the pages. CSRF is checked by page blueprints only
    (WTF_CSRF_CHECK_DEFAULT off: the API's POSTs carry keys, not cookies)."""
    app.session_interface = PageSessions()
    app.config.update(
        SESSION_COOKIE_NAME="loyalty_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    # a token is good for the session (a customer may leave the form open for a while)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    # the pages send no Referer (Referrer-Policy: no-referrer), which the HTTPS-only referrer
    # check would need: the session's token and SameSite=Lax cookies keep other sites out
    app.config.setdefault("WTF_CSRF_SSL_STRICT", False)
    app.config.setdefault("BABEL_DEFAULT_LOCALE", LANGUAGES[0])
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS_DIR)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.globals.update(LANGUAGE_NAMES=LANGUAGE_NAMES, current_language=current_language)


def current_language() -> str:
    """The page's language code ("en", "nl"): `<html lang>`, the switch."""
    return str(get_locale() or LANGUAGES[0])


class PageBlueprint(Blueprint):
    """A blueprint of pages: its templates in loyalty/web/templates, CSRF checked on every
    POST, PUT, PATCH and DELETE, and errors answered with an HTML page (in the page's
    language), not problem+json."""

    def __init__(self, name: str, import_name: str, **kwargs: Any) -> None:
        kwargs.setdefault("template_folder", str(WEB_DIR / "templates"))
        super().__init__(name, import_name, **kwargs)
        PAGE_NAMES.add(name)
        self.before_request(_check_csrf)
        self.register_error_handler(HTTPException, error_page)
        self.register_error_handler(DomainError, error_page)
        self.register_error_handler(Exception, unexpected_error_page)


#: Paths that are not pages: their errors stay problem+json whatever the route.
NOT_PAGES = ("/api/", "/healthz", "/readyz", "/metrics")


def pages_or(api_handler: Callable[[HTTPException], Any]) -> Callable[[HTTPException], Any]:
    """The app's HTTPException handler: an HTML error page for a path outside the API (no
    route, wrong method: errors no page blueprint sees), `api_handler`'s problem+json else."""

    def handle(exc: HTTPException) -> Any:
        if request.path.startswith(NOT_PAGES) or request.blueprint not in (None, *PAGE_NAMES):
            return api_handler(exc)
        return error_page(exc)

    return handle


def _check_csrf() -> None:
    csrf.protect()  # GET/HEAD/OPTIONS pass; a POST without the session's token: CSRFError (400)


def error_page(exc: HTTPException | DomainError) -> Any:
    """An error as a page: its status, a plain sentence in the page's language."""
    if isinstance(exc, CSRFError):
        status = 400
        message = _(
            "This form has expired or did not come from this site. Reload the page and try again."
        )
    elif isinstance(exc, DomainError):
        status, message = exc.status, _error_message(exc.status)
    else:
        status, message = exc.code or 500, _error_message(exc.code or 500)
    return render_template("error.html", status=status, message=message), status


def unexpected_error_page(exc: Exception) -> Any:
    """An error nobody expected, on a page: logged with its traceback (like the API's
    internal errors), answered with the 500 page; never its details."""
    log.exception("unhandled error", exc_info=exc)
    try:
        return error_page(InternalServerError())
    except Exception:  # the page cannot be drawn either (its session, its language): plain text
        log.exception("the error page failed")
        return Response("Internal server error", 500, mimetype="text/plain")


def _error_message(status: int) -> str:
    if status == 404:
        return _("This page does not exist.")
    if status == 429:
        return _("Too many requests. Please wait a minute and try again.")
    if status == 405:
        return _("That is not something this page can do.")
    if 400 <= status < 500:
        return _("Something in the request was not right. Please try again.")
    return _("Something went wrong on our side. Please try again later.")
