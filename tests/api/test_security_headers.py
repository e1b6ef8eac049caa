"""Security headers on every answer (nosniff, no framing, no-store on API answers, a CSP), the
docs page working under its own CSP, and CORS only for the configured origins."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from loyalty.config import Config

NO_FRAMING = "frame-ancestors 'none'"
API_CSP = "default-src 'none'; frame-ancestors 'none'"
SHOP = "https://shop.example"


def _assert_protected(r: Any) -> None:
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert NO_FRAMING in r.headers["Content-Security-Policy"]


def test_api_answers_are_not_sniffed_framed_or_stored(client, admin) -> None:
    answers = [
        client.get("/api/v1/program", headers=admin),  # 200 JSON
        client.get("/api/v1/program"),  # 401 problem+json
        client.get("/api/v1/members/999", headers=admin),  # 404
        client.get("/api/v1/nowhere"),  # no route
        client.get("/api/v1/openapi.json"),
        client.get("/healthz"),
    ]
    assert [r.status_code for r in answers] == [200, 401, 404, 404, 200, 200]
    for r in answers:
        _assert_protected(r)
        assert r.headers["Content-Security-Policy"] == API_CSP, r.request.path
        assert r.headers["Cache-Control"] == "no-store", r.request.path
        assert "Retry-After" not in r.headers  # only a 429 (or 503) says when to come back


class _Page(HTMLParser):
    """The scripts, the URLs and the inline event handlers of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
        self.handlers += [k for k, _ in attrs if k.startswith("on")]
        self._in_script = tag == "script" and "src" not in values

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_scripts.append(data)


def _directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}


def test_the_docs_page_loads_under_its_csp(client) -> None:
    """What a browser would allow: every script is this app's or an inline one whose hash the
    CSP names; every file the page loads is this app's and is served; nothing may frame it."""
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    _assert_protected(r)
    assert r.headers["Cache-Control"] == "no-store"
    csp = _directives(r.headers["Content-Security-Policy"])
    assert csp["default-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["connect-src"] == ["'self'"]  # the document and "Try it out": this app only
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    assert csp["style-src"] == ["'self'", "'unsafe-inline'"]  # Swagger UI's style attributes
    page = _Page()
    page.feed(r.get_data(as_text=True))
    assert page.handlers == []
    assert len(page.inline_scripts) == 1 and "SwaggerUIBundle(" in page.inline_scripts[0]
    digest = hashlib.sha256(page.inline_scripts[0].encode()).digest()
    assert f"'sha256-{base64.b64encode(digest).decode()}'" in csp["script-src"]
    assert {u.rsplit("/", 1)[-1] for u in page.urls} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for url in page.urls:
        assert url.startswith("/api/v1/docs/"), url  # 'self'
        with client.get(url) as asset:
            assert asset.status_code == 200, url
            assert asset.headers["X-Content-Type-Options"] == "nosniff"
            assert "max-age=3600" in asset.headers["Cache-Control"]  # files may be cached


def test_another_page_gets_the_pages_csp(app, client, monkeypatch, tmp_path) -> None:
    """The page that says Swagger UI is missing: HTML, with no inline script allowed."""
    monkeypatch.setitem(app.config, "LOYALTY_SWAGGER_UI_DIR", str(tmp_path))
    r = client.get("/api/v1/docs")
    assert r.status_code == 503 and r.mimetype == "text/html"
    _assert_protected(r)
    csp = _directives(r.headers["Content-Security-Policy"])
    assert csp["script-src"] == ["'self'"] and csp["default-src"] == ["'none'"]


PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
}


def test_without_configured_origins_no_site_may_call_the_api(client, admin) -> None:
    r = client.options("/api/v1/purchases", headers={"Origin": SHOP, **PREFLIGHT})
    assert not [h for h, _ in r.headers.items() if h.lower().startswith("access-control-")]
    r = client.get("/api/v1/program", headers={"Origin": SHOP, **admin})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_a_configured_origin_passes_the_preflight_and_others_do_not(make_app) -> None:
    client = make_app(LOYALTY_CORS_ORIGINS=[SHOP]).test_client()
    r = client.options("/api/v1/purchases", headers={"Origin": SHOP, **PREFLIGHT})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == SHOP
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {"authorization", "content-type", "idempotency-key"}
    assert r.headers["Access-Control-Max-Age"] == "600"
    assert "Access-Control-Allow-Credentials" not in r.headers  # keys, never cookies

    refused = client.options(
        "/api/v1/purchases", headers={"Origin": "https://evil.example", **PREFLIGHT}
    )
    assert "Access-Control-Allow-Origin" not in refused.headers
    # the address of the shop on another scheme or port is another origin
    other_port = client.options(
        "/api/v1/purchases", headers={"Origin": SHOP + ":8443", **PREFLIGHT}
    )
    assert "Access-Control-Allow-Origin" not in other_port.headers

    r = client.get("/api/v1/program", headers={"Origin": SHOP})
    assert r.status_code == 401 and r.headers["Access-Control-Allow-Origin"] == SHOP
    exposed = {h.strip() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Total-Count", "Retry-After", "X-RateLimit-Remaining", "Idempotent-Replayed"} <= (
        exposed
    )


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        (None, []),
        ("", []),
        (f" {SHOP} , https://till.example,", [SHOP, "https://till.example"]),
    ],
)
def test_cors_origins_are_read_comma_separated(monkeypatch, tmp_path, value, origins) -> None:
    if value is None:
        monkeypatch.delenv("LOYALTY_CORS_ORIGINS", raising=False)
    else:
        monkeypatch.setenv("LOYALTY_CORS_ORIGINS", value)
    monkeypatch.setenv("SECRET_KEY", "test")
    config = Config(str(tmp_path))
    assert origins == config.LOYALTY_CORS_ORIGINS


def test_no_page_or_answer_names_another_host_in_its_csp(client) -> None:
    for path in ("/api/v1/docs", "/api/v1/openapi.json"):
        csp = client.get(path).headers["Content-Security-Policy"]
        assert not re.search(r"https?:|\*", csp), csp
