"""Extensions, created here and bound to the app in `create_app`."""

from __future__ import annotations

import contextvars
import http
from pathlib import Path
from typing import Any

from apispec import APISpec, BasePlugin
from flask import Flask, Response, abort, render_template_string, send_from_directory, url_for
from flask_cors import CORS
from flask_migrate import Migrate
from flask_smorest import Api
from flask_smorest.spec import prepare_response
from flask_sqlalchemy import SQLAlchemy
from markupsafe import Markup

from loyalty.errors import DomainError
from loyalty.headers import page_csp, script_hash
from loyalty.models.base import Base
from loyalty.ratelimits import AppLimiter
from loyalty.schemas.common import PROBLEM_MIMETYPE, ProblemSchema


def error_codes() -> dict[int, dict[str, str]]:
    """Every problem `code` a client can get, by status, with its title: the DomainError table
    (`loyalty/errors.py`) and the codes the HTTP layer gives itself (`loyalty/api/problems.py`).
    The OpenAPI document is generated from this."""
    from loyalty.api.problems import http_codes  # loyalty.api imports this module

    table: dict[int, dict[str, str]] = {}
    todo = list(DomainError.__subclasses__())  # the base class itself is never raised
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        table.setdefault(cls.status, {}).setdefault(cls.code, cls.title)
    for status, (code, title) in http_codes().items():
        table.setdefault(status, {}).setdefault(code, title)
    return {status: dict(sorted(table[status].items())) for status in sorted(table)}


#: Request fields and query parameters that name an object: an unknown one is a 404.
REFERENCE_FIELDS = frozenset(
    {
        "member_id",
        "card_number",
        "purchase_id",
        "purchase_external_id",
        "redemption_id",
        "reward_id",
        "reward_ids",
        "voucher_codes",
    }
)
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})


class ErrorResponsesPlugin(BasePlugin):
    """The error responses of each operation, each referring to its status's response (which
    lists that status's codes): 400 where a body is read, 401 and 403 where a key is needed,
    404 where the path or a field names an object, 409 where the operation writes (state and
    Idempotency-Key conflicts), 429 everywhere (rate limits). 422 is flask-smorest's; every
    operation also has `default`, with every code."""

    def init_spec(self, spec: APISpec) -> None:
        super().init_spec(spec)
        self.spec = spec

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        for method, operation in (operations or {}).items():
            statuses = {429}
            if operation.get("security"):
                statuses |= {401, 403}
            if "{" in (path or "") or self._names_object(operation):
                statuses.add(404)
            if method in WRITE_METHODS:
                statuses.add(409)
            if "requestBody" in operation:
                statuses.add(400)  # invalid_json
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                if status not in responses and str(status) not in responses:
                    responses[str(status)] = http.HTTPStatus(status).name

    def _names_object(self, operation: dict) -> bool:
        names = {p.get("name") for p in operation.get("parameters", []) if isinstance(p, dict)}
        for media in operation.get("requestBody", {}).get("content", {}).values():
            names.update(self._properties(media.get("schema")))
        return not names.isdisjoint(REFERENCE_FIELDS)

    def _properties(self, schema: Any) -> list[str]:
        if isinstance(schema, dict) and "$ref" in schema:
            schema = schema["$ref"].rsplit("/", 1)[-1]
        if isinstance(schema, str):
            schema = self.spec.components.schemas.get(schema, {})
        return list(schema.get("properties", {})) if isinstance(schema, dict) else []


#: The files of the pinned npm package swagger-ui-dist that the docs page uses.
SWAGGER_UI_FILES = frozenset(
    {
        "swagger-ui.css",
        "swagger-ui.css.map",
        "swagger-ui-bundle.js",
        "swagger-ui-bundle.js.map",
        "favicon-16x16.png",
        "favicon-32x32.png",
    }
)

SWAGGER_UI_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{{ title }}</title>
  <link rel="stylesheet" href="{{ files }}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{{ files }}/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="{{ files }}/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{{ files }}/swagger-ui-bundle.js"></script>
  <script>{{ init }}</script>
</body>
</html>
"""

#: The inline script that starts Swagger UI (the page's CSP names its hash).
SWAGGER_UI_INIT = (
    "window.onload = function () { window.ui = SwaggerUIBundle({{ config | tojson }}); };"
)

SWAGGER_UI_MISSING = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><p>Swagger UI is not installed here: run <code>make node</code> (it installs the pinned
npm package swagger-ui-dist), or point LOYALTY_SWAGGER_UI_DIR at its files. The OpenAPI
document is at <a href="{{ spec_url }}">{{ spec_url }}</a>.</p></body></html>
"""


def api_description(grace_hours: int) -> str:
    """The document's introduction: how to get a key, and how errors are reported."""
    return f"""Every operation but the receipt's feedback link and the Stripe webhook needs an
API key, sent as `Authorization: Bearer lk_…`. Keys are made on the server by whoever runs it:

    flask --app wsgi loyalty create-api-key NAME --scope pos   # or webshop, admin, reports

prints a new key once (only its hash is stored). `rotate-api-key NAME` gives a client a new key
while the old one keeps working for {grace_hours} hours (LOYALTY_API_KEY_GRACE_HOURS);
`revoke-api-key NAME` stops a client's keys at once. The demo (`make run` on an empty database)
prints a `demo-admin` and a `demo-pos` key.

Errors are `application/problem+json` with a stable `code`: each error response lists the codes
of its status, and the schema `ErrorCode` lists every code."""


BEARER_AUTH = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key (`lk_…`): `flask --app wsgi loyalty create-api-key NAME "
    "--scope SCOPE` on the server prints one. Scopes: pos, webshop, admin (everything), "
    "reports.",
}


class LoyaltyApi(Api):
    """flask-smorest's Api, with errors documented as application/problem+json (each status
    with its codes), the key and error guide in the document, and Swagger UI served by the
    application itself from the pinned npm package swagger-ui-dist (nothing from a CDN)."""

    ERROR_SCHEMA = ProblemSchema

    def init_app(self, app: Flask, *, spec_kwargs: dict[str, Any] | None = None) -> None:
        kwargs = dict(spec_kwargs or {})
        kwargs["extra_plugins"] = [*kwargs.get("extra_plugins", ()), ErrorResponsesPlugin()]
        info = {**kwargs.get("info", {})}
        info["description"] = api_description(app.config["LOYALTY_API_KEY_GRACE_HOURS"])
        kwargs["info"] = info
        super().init_app(app, spec_kwargs=kwargs)
        self.spec.components.security_scheme("bearerAuth", BEARER_AUTH)

    def _register_responses(self) -> None:
        codes = error_codes()
        self.spec.components.schema(
            "ErrorCode",
            {
                "type": "string",
                "enum": sorted({code for by_status in codes.values() for code in by_status}),
                "description": "Every `code` of a problem response.",
            },
        )
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status in codes:
                response = _status_response(status, codes[status], self.ERROR_SCHEMA)
            elif not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            if status == http.HTTPStatus.TOO_MANY_REQUESTS:
                response["headers"] = RATE_LIMIT_HEADERS
            prepare_response(response, self.spec, PROBLEM_MIMETYPE)
            # a status with codes is listed even where no operation refers to it
            self.spec.components.response(status.name, response, lazy=status not in codes)
        response = {
            "description": "Error (problem+json); `code` is one of `ErrorCode`.",
            "schema": _with_code(self.ERROR_SCHEMA, {"$ref": "#/components/schemas/ErrorCode"}),
        }
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def _register_swagger_ui_rule(self, blueprint: Any) -> None:
        path = self.config.get("OPENAPI_SWAGGER_UI_PATH")
        if path is None:
            return
        path = "/" + path.strip("/")
        blueprint.add_url_rule(path, endpoint="openapi_swagger_ui", view_func=self._swagger_ui)
        blueprint.add_url_rule(
            f"{path}/<path:filename>", endpoint="swagger_ui_file", view_func=self._swagger_file
        )

    def _swagger_ui(self) -> Any:
        blueprint = self._make_doc_blueprint_name()
        spec_url = url_for(f"{blueprint}.openapi_json")
        if not (Path(self.config["LOYALTY_SWAGGER_UI_DIR"]) / "swagger-ui-bundle.js").is_file():
            page = render_template_string(
                SWAGGER_UI_MISSING, title=self.spec.title, spec_url=spec_url
            )
            return Response(page, status=503, mimetype="text/html")
        config = {
            "url": spec_url,
            "dom_id": "#swagger-ui",
            "validatorUrl": None,  # Swagger UI would send the document to validator.swagger.io
            **self.config.get("OPENAPI_SWAGGER_UI_CONFIG", {}),
        }
        files = url_for(f"{blueprint}.openapi_swagger_ui")
        init = render_template_string(SWAGGER_UI_INIT, config=config)
        page = render_template_string(
            SWAGGER_UI_PAGE, title=self.spec.title, files=files, init=Markup(init)
        )
        # the page's CSP allows its one inline script by its hash (loyalty/headers.py)
        return Response(
            page,
            mimetype="text/html",
            headers={"Content-Security-Policy": page_csp(script_hash(init))},
        )

    def _swagger_file(self, filename: str) -> Any:
        if filename not in SWAGGER_UI_FILES:
            abort(404)
        return send_from_directory(self.config["LOYALTY_SWAGGER_UI_DIR"], filename, max_age=3600)


#: The headers of a 429 (loyalty/ratelimits.py; the X-RateLimit-* convention).
RATE_LIMIT_HEADERS = {
    "Retry-After": {
        "description": "Seconds until a request may succeed again.",
        "schema": {"type": "integer", "minimum": 0},
        "required": True,
    },
    "X-RateLimit-Limit": {
        "description": "Requests the exceeded limit allows per window.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the window: 0.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "X-RateLimit-Reset": {
        "description": "When the window ends, as a Unix time in seconds.",
        "schema": {"type": "integer"},
    },
}


def _with_code(schema: Any, code: dict[str, Any]) -> dict[str, Any]:
    return {"allOf": [schema, {"type": "object", "properties": {"code": code}}]}


def _status_response(status: http.HTTPStatus, codes: dict[str, str], schema: Any) -> dict:
    lines = "\n".join(f"- `{code}`: {title}" for code, title in codes.items())
    return {
        "description": f"{status.phrase}. `code` is one of:\n\n{lines}",
        "schema": _with_code(schema, {"type": "string", "enum": list(codes)}),
    }


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
api = LoyaltyApi()
limiter = AppLimiter()  # loyalty/ratelimits.py
cors = CORS()  # loyalty/headers.py: only for LOYALTY_CORS_ORIGINS

#: Read by the SQLite BEGIN hook: a write transaction takes the write lock up front
#: (BEGIN IMMEDIATE), so read-then-write cannot interleave between app servers.
write_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "write_transaction", default=False
)
