"""What every page shares: cookie sessions for pages only (none for the API), their flags, the
static files (ours and npm's), HTML error pages, the CSP."""

from __future__ import annotations

import logging
import re

from werkzeug.routing import Rule

from loyalty.app import create_app
from loyalty.extensions import db
from loyalty.web.base import PAGE_NAMES
from loyalty.web.site import VENDOR_FILES

PAGE = "/f/nothing-here"  # a page (404) that still renders the layout and its forms


def _cookie(response) -> str:
    cookies = [v for k, v in response.headers.items() if k == "Set-Cookie"]
    assert len(cookies) == 1, cookies
    return cookies[0]


def test_pages_get_an_httponly_samesite_session_cookie(client) -> None:
    cookie = _cookie(client.get(PAGE))
    assert cookie.startswith("loyalty_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_the_cookie_is_secure_over_https(client) -> None:
    assert "Secure" in _cookie(client.get(PAGE, base_url="https://localhost"))


def test_the_cookie_is_secure_when_the_public_url_is_https(app, make_app, monkeypatch) -> None:
    """LOYALTY_PUBLIC_URL=https://… from the environment: Secure cookies even over plain HTTP
    (TLS ends at a proxy that does not say so). make_app restores the API's binding."""
    monkeypatch.setenv("LOYALTY_PUBLIC_URL", "https://shop.example")
    chosen_by_env = ("LOYALTY_PUBLIC_URL", "SESSION_COOKIE_SECURE")
    behind_https = create_app({k: v for k, v in app.config.items() if k not in chosen_by_env})
    try:
        assert behind_https.config["SESSION_COOKIE_SECURE"] is True
        assert "Secure" in _cookie(behind_https.test_client().get(PAGE))
    finally:
        with behind_https.app_context():
            db.engine.dispose()


def test_the_api_neither_reads_nor_sets_cookies(app, client, admin) -> None:
    cookie = _cookie(client.get(PAGE)).split(";")[0]  # the browser has a page session now
    sessions = app.session_interface
    with app.test_request_context("/api/v1/program", headers={"Cookie": cookie}) as ctx:
        assert sessions.is_null_session(sessions.open_session(app, ctx.request))
    with app.test_request_context(PAGE, headers={"Cookie": cookie}) as ctx:
        page_session = sessions.open_session(app, ctx.request)
        assert not sessions.is_null_session(page_session) and "csrf_token" in page_session
    r = client.get("/api/v1/program", headers=admin)
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    assert "Cookie" not in r.headers.get("Vary", "")


def test_the_api_takes_no_csrf_token(client, pos) -> None:
    r = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos)
    assert r.status_code == 201


def test_static_files_are_served_by_the_app(client) -> None:
    with client.get("/static/site/site.css") as css:
        assert css.status_code == 200 and css.mimetype == "text/css"
    for name in VENDOR_FILES:
        with client.get(f"/static/vendor/{name}") as r:
            assert r.status_code == 200 and r.mimetype == "text/javascript", name
    assert client.get("/static/vendor/package.json").status_code == 404
    assert client.get("/static/vendor/..%2Fpackage.json").status_code == 404


def test_pages_answer_errors_as_html_and_have_a_csp_without_inline_scripts(client) -> None:
    r = client.get(PAGE)
    assert r.status_code == 404 and r.mimetype == "text/html"
    csp = r.headers["Content-Security-Policy"]
    scripts = csp.split("script-src")[1].split(";")[0]
    assert scripts.strip() == "'self'"  # no inline script, no eval
    styles = csp.split("style-src")[1].split(";")[0]
    assert styles.strip() == "'self'"  # no inline style (only the API docs' Swagger UI has them)
    assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert r.headers["Cache-Control"] == "no-store"


def test_a_wrong_method_on_a_page_is_an_html_page(client) -> None:
    r = client.delete(PAGE)
    assert r.status_code in (400, 405) and r.mimetype == "text/html"


def test_an_unexpected_error_on_a_page_is_the_html_500_page(client, monkeypatch, caplog) -> None:
    def broken(token: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("loyalty.web.feedback._closed", broken)
    with caplog.at_level(logging.ERROR):
        r = client.get("/f/any-token")
    assert r.status_code == 500 and r.mimetype == "text/html"
    assert b"went wrong on our side" in r.data and b"a bug" not in r.data
    assert any(
        rec.getMessage() == "unhandled error" and rec.exc_info and rec.exc_info[0] is RuntimeError
        for rec in caplog.records
    )


def test_an_unexpected_error_in_the_api_stays_problem_json(client, pos, monkeypatch) -> None:
    def broken(url: str) -> bytes:
        raise RuntimeError("a bug")

    monkeypatch.setattr("loyalty.api.feedback.qr_svg", broken)
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    body = {"external_id": "r1", "member_id": member["id"], "amount": 1000, "currency": "EUR"}
    purchase = client.post("/api/v1/purchases", json=body, headers=pos).json
    r = client.get(f"/api/v1/purchases/{purchase['id']}/feedback-qr", headers=pos)
    assert r.status_code == 500 and r.mimetype == "application/problem+json"
    assert r.json["code"] == "internal_error"


#: A value each path converter takes (a card number for the card converter, an id, a token).
_SAMPLE_VALUES = ("1", "4111111111111111", "token")
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _page_writes(app) -> list[tuple[Rule, str]]:
    return [
        (rule, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.partition(".")[0] in PAGE_NAMES
        for method in sorted(_WRITES & (rule.methods or set()))
    ]


def _sample_path(app, rule: Rule, method: str) -> str:
    values = {}
    for name, converter in rule._converters.items():
        values[name] = next(v for v in _SAMPLE_VALUES if re.fullmatch(converter.regex, v))
    with app.test_request_context():
        path = app.url_map.bind("localhost").build(rule.endpoint, values, method=method)
    assert app.url_map.bind("localhost").match(path, method=method)[0] == rule.endpoint
    return path


def test_every_page_form_refuses_a_post_without_the_csrf_token(app, client) -> None:
    """Every POST, PUT, PATCH and DELETE route of a page blueprint (the staff's too): 400
    without the session's token, before the view runs (signed in or not, found or not)."""
    writes = _page_writes(app)
    assert {rule.endpoint for rule, _ in writes} >= {"site.language", "feedback_page.answer"}
    client.get(PAGE)  # a session with a CSRF token, which the requests below do not send
    for rule, method in writes:
        path = _sample_path(app, rule, method)
        r = client.open(path, method=method, data={"lang": "nl", "nps": "5"})
        assert r.status_code == 400 and b"did not come from this site" in r.data, (method, path)
        forged = client.open(path, method=method, data={"csrf_token": "forged"})
        assert forged.status_code == 400, (method, path)
