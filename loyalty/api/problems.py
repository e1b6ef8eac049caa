"""The HTTP side of the error table: every error a client sees as `application/problem+json`.

Domain errors (`loyalty/errors.py`) carry their status, code and title; werkzeug's HTTP errors
(unknown route, body too large, schema validation) are mapped by status here; a body that
is not JSON we read is refused by `body.py` with the DomainError `InvalidJSON`. A body
rejected item of `/purchases/batch` carries the same shape (`problem_body`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Response, json
from werkzeug.exceptions import HTTPException

from loyalty.errors import DomainError, RateLimited
from loyalty.schemas.common import PROBLEM_MIMETYPE

log = logging.getLogger(__name__)


def problem_body(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    errors: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem details object (RFC 9457) with our `code` and per-field `errors`."""
    return {
        "type": f"urn:loyalty:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code,
        "errors": dict(errors or {}),
    }


def domain_problem(exc: DomainError) -> dict[str, Any]:
    return problem_body(exc.status, exc.code, exc.title, exc.detail, exc.errors)


def problem(body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    """A problem+json response of `body` (see problem_body)."""
    resp = Response(json.dumps(body), status=body["status"], mimetype=PROBLEM_MIMETYPE)
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def domain_error_response(exc: DomainError) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="loyalty"'} if exc.status == 401 else None
    return problem(domain_problem(exc), headers)


def flatten_messages(messages: Any) -> dict[str, list[str]]:
    """webargs/marshmallow messages → {"field.path": ["message", ...]}.

    webargs nests them under the location (`{"json": {"email": ["..."]}}`); the location is
    dropped, nested fields are joined with dots, list indexes kept (`purchases.3.amount`).
    """
    out: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list | tuple):
            if all(isinstance(v, str) for v in value):
                out.setdefault(prefix or "_schema", []).extend(value)
            else:
                for sub in value:
                    walk(prefix, sub)
        else:
            out.setdefault(prefix or "_schema", []).append(str(value))

    if isinstance(messages, Mapping):
        for location, sub in messages.items():
            if location in ("json", "query", "querystring", "form", "headers", "path", "files"):
                walk("", sub)
            else:
                walk(str(location), sub)
    else:
        walk("", messages)
    return out


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict with the current state"),
    413: ("payload_too_large", "The request body is too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "The request is not valid"),
    429: (RateLimited.code, RateLimited.title),  # a werkzeug TooManyRequests
}


def http_error_response(exc: HTTPException) -> Response:
    """Map a werkzeug/webargs HTTPException to problem+json."""
    status = exc.code or 500
    code, title = _HTTP_CODES.get(status, ("error", exc.name or "Error"))
    detail = exc.description if isinstance(exc.description, str) else None
    errors: dict[str, list[str]] = {}
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") if isinstance(data, Mapping) else None
    if messages:
        errors = flatten_messages(messages)
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
    headers = {}
    if status == 405 and exc.get_response().headers.get("Allow"):
        headers["Allow"] = exc.get_response().headers["Allow"]
    return problem(problem_body(status, code, title, detail or None, errors), headers)


INTERNAL_ERROR = ("internal_error", "Internal server error")


def http_codes() -> dict[int, tuple[str, str]]:
    """The (code, title) this module gives by status, beside the DomainError table's (the
    OpenAPI document lists both: `loyalty.extensions.error_codes`)."""
    return {**_HTTP_CODES, 500: INTERNAL_ERROR}


def internal_error_response(exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return problem(problem_body(500, *INTERNAL_ERROR))
