"""Security headers on every response, and CORS for the configured browser origins only.

The header values are built once, at import, with the `secure` package (typed builders for
each header, maintained); each response then only gets the prepared values it lacks (a view
may set its own: the docs page its CSP with the hash of its inline script and Swagger UI's
inline styles, the Swagger UI files their Cache-Control). API answers (JSON, problem+json) get
a CSP that allows nothing and `Cache-Control: no-store`; HTML pages a CSP that allows this
app's own scripts, stylesheets (no inline style), images and API calls. Neither may be
framed (`frame-ancestors 'none'`, `X-Frame-Options: DENY`), and nothing is sniffed
(`X-Content-Type-Options: nosniff`).
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from flask import Flask
from flask.wrappers import Response
from flask_cors import CORS
from secure import (
    CacheControl,
    ContentSecurityPolicy,
    ReferrerPolicy,
    Secure,
    XContentTypeOptions,
    XFrameOptions,
)


def _page_policy(*script_hashes: str, inline_styles: bool = False) -> ContentSecurityPolicy:
    """The pages' CSP: everything from this app only; inline scripts only by their hash;
    inline styles only where asked (Swagger UI sets style attributes; our pages do not)."""
    styles = ("'self'", "'unsafe-inline'") if inline_styles else ("'self'",)
    return (
        ContentSecurityPolicy()
        .default_src("'none'")
        .script_src("'self'", *(f"'{h}'" for h in script_hashes))
        .style_src(*styles)
        .img_src("'self'", "data:")
        .font_src("'self'", "data:")
        .connect_src("'self'")
        .base_uri("'none'")
        .form_action("'self'")
        .frame_ancestors("'none'")
    )


_API_POLICY = ContentSecurityPolicy().default_src("'none'").frame_ancestors("'none'")


def _headers(csp: ContentSecurityPolicy) -> dict[str, str]:
    return dict(
        Secure(
            csp=csp,
            cache=CacheControl().no_store(),
            referrer=ReferrerPolicy().no_referrer(),
            xcto=XContentTypeOptions().nosniff(),
            xfo=XFrameOptions().deny(),
        ).headers
    )


API_HEADERS = _headers(_API_POLICY)
PAGE_HEADERS = _headers(_page_policy())


def script_hash(script: str) -> str:
    """A CSP source for an inline script: `sha256-<base64 of its digest>`."""
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


@lru_cache(maxsize=16)
def page_csp(*script_hashes: str) -> str:
    """The API docs page's Content-Security-Policy value: the pages' policy, allowing these
    inline scripts too, and inline styles (Swagger UI's)."""
    return _page_policy(*script_hashes, inline_styles=True).header_value


def add_security_headers(response: Response) -> Response:
    """after_request: the prepared headers a response does not set itself. `Retry-After` is
    kept only where it means something (429, 503)."""
    headers = response.headers
    for name, value in (PAGE_HEADERS if response.mimetype == "text/html" else API_HEADERS).items():
        headers.setdefault(name, value)
    if response.status_code not in (429, 503):
        headers.pop("Retry-After", None)
    return response


#: What a browser may send and read across origins (beside the CORS-safelisted headers).
CORS_ALLOW_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key"]
CORS_EXPOSE_HEADERS = [
    "Idempotent-Replayed",
    "Location",
    "Retry-After",
    "X-Pagination",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-Request-Id",
    "X-Total-Count",
]


def init_app(app: Flask, cors: CORS) -> None:
    """Security headers on every response; CORS on /api/v1 for LOYALTY_CORS_ORIGINS only
    (none by default: no CORS header is ever sent, so browsers keep other sites out). Call it
    before the limiter's init_app: after_request functions run last registered first, and this
    one sees the answer with the limiter's headers."""
    app.after_request(add_security_headers)
    origins = app.config["LOYALTY_CORS_ORIGINS"]
    if origins:
        cors.init_app(
            app,
            resources={r"/api/v1/*": {"origins": list(origins)}},
            allow_headers=CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
            supports_credentials=False,
            max_age=600,
        )
