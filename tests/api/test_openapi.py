"""The OpenAPI document describes what the service does."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from loyalty import auth
from loyalty.errors import DomainError

EXPECTED = {
    ("/api/v1/members", "get"),
    ("/api/v1/members", "post"),
    ("/api/v1/members/{member_id}", "get"),
    ("/api/v1/members/{member_id}", "patch"),
    ("/api/v1/members/{member_id}", "delete"),
    ("/api/v1/members/{member_id}/cards", "post"),
    ("/api/v1/cards/{card_number}", "get"),
    ("/api/v1/cards/{card_number}/block", "post"),
    ("/api/v1/program", "get"),
    ("/api/v1/program", "put"),
}


def test_openapi_lists_every_operation_with_bearer_security(client) -> None:
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    ops = {(p, m) for p, item in spec["paths"].items() for m in item if m != "parameters"}
    assert ops >= EXPECTED
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, method in EXPECTED:
        op = spec["paths"][path][method]
        assert op["security"] == [{"bearerAuth": []}], (path, method)
        assert "default" in op["responses"]  # problem+json for every error


def test_post_operations_document_idempotency_key(client) -> None:
    spec = client.get("/api/v1/openapi.json").json
    params = spec["paths"]["/api/v1/members"]["post"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in params)


def test_errors_are_documented_as_problem_json(client) -> None:
    spec = client.get("/api/v1/openapi.json").json
    default = spec["components"]["responses"]["DEFAULT_ERROR"]
    assert "application/problem+json" in default["content"]


def test_interactive_docs_are_served(client) -> None:
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and b"swagger" in r.data.lower()


def _docs_assets(html: str) -> list[str]:
    """Every URL the page loads (src and href attributes)."""

    class Assets(HTMLParser):
        found: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.found += [v for k, v in attrs if k in ("src", "href") and v]

    parser = Assets()
    parser.found = []
    parser.feed(html)
    return parser.found


def test_the_docs_page_loads_everything_from_the_app_itself(client) -> None:
    """Swagger UI works offline: the page and all it loads come from this app, from the pinned
    npm package, and Swagger UI is told not to call its online validator."""
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert not re.search(r"https?://", html), "the page names another host"
    assert '"validatorUrl": null' in html and '"url": "/api/v1/openapi.json"' in html
    assets = _docs_assets(html)
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {"swagger-ui.css", "swagger-ui-bundle.js"}
    dist = Path(client.application.config["LOYALTY_SWAGGER_UI_DIR"])
    types = {"css": "text/css", "js": "text/javascript", "png": "image/png"}
    for url in assets:
        assert url.startswith("/api/v1/docs/"), url
        with client.get(url) as asset:
            assert asset.status_code == 200, url
            assert asset.mimetype == types[url.rsplit(".", 1)[-1]], url
            assert asset.data == (dist / url.rsplit("/", 1)[-1]).read_bytes()
    root = Path(__file__).resolve().parents[2]
    pinned = json.loads((root / "package.json").read_text())["dependencies"]["swagger-ui-dist"]
    assert json.loads((dist / "package.json").read_text())["version"] == pinned


def test_the_docs_page_serves_swagger_ui_files_only(client) -> None:
    for path in ("package.json", "../package.json", "index.html", "swagger-initializer.js"):
        r = client.get(f"/api/v1/docs/{path}")
        assert r.status_code == 404 and r.json["code"] == "not_found", path


def test_the_docs_page_says_how_to_install_swagger_ui_when_it_is_missing(
    app, client, monkeypatch, tmp_path
) -> None:
    monkeypatch.setitem(app.config, "LOYALTY_SWAGGER_UI_DIR", str(tmp_path))
    r = client.get("/api/v1/docs")
    assert r.status_code == 503 and b"make node" in r.data and b"/api/v1/openapi.json" in r.data


def test_the_document_says_how_to_get_a_key(client) -> None:
    spec = client.get("/api/v1/openapi.json").json
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert "create-api-key NAME --scope" in scheme["description"]
    intro = spec["info"]["description"]
    assert "create-api-key" in intro and "rotate-api-key" in intro
    assert "keeps working for 24 hours" in intro  # LOYALTY_API_KEY_GRACE_HOURS


def test_every_error_code_is_documented_with_its_status(client) -> None:
    """Every DomainError code (and the HTTP layer's) is in the document: in `ErrorCode`, and in
    the response of its status, which the operations refer to."""
    spec = client.get("/api/v1/openapi.json").json
    every = set(spec["components"]["schemas"]["ErrorCode"]["enum"])
    by_status = {
        status: _code_enum(spec, name)
        for status, name in (
            (400, "BAD_REQUEST"),
            (401, "UNAUTHORIZED"),
            (403, "FORBIDDEN"),
            (404, "NOT_FOUND"),
            (409, "CONFLICT"),
            (422, "UNPROCESSABLE_ENTITY"),
        )
    }
    todo = list(DomainError.__subclasses__())
    assert len(todo) > 5
    while todo:
        error = todo.pop()
        todo += error.__subclasses__()
        assert error.code in every, error
        if error.status in by_status:
            assert error.code in by_status[error.status], error
    assert {"internal_error", "method_not_allowed", "payload_too_large"} <= every
    assert {"email_taken", "idempotency_key_reused", "conflict"} <= by_status[409]
    assert "insufficient_points" not in by_status[409]


def _code_enum(spec: dict, response: str) -> set[str]:
    if response not in spec["components"]["responses"]:  # referred to by no operation
        return set()
    schema = spec["components"]["responses"][response]["content"]["application/problem+json"]
    return set(schema["schema"]["allOf"][1]["properties"]["code"]["enum"])


def test_operations_document_401_403_404_and_409_where_they_can_occur(client) -> None:
    spec = client.get("/api/v1/openapi.json").json
    paths = spec["paths"]

    def documented(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert {"401", "403", "404"} <= documented("/api/v1/members/{member_id}", "get")
    assert "409" not in documented("/api/v1/members/{member_id}", "get")
    assert {"401", "403", "404", "409"} <= documented("/api/v1/purchases", "post")  # member_id
    assert {"409"} <= documented("/api/v1/program", "put")
    assert {"401", "403"} <= documented("/api/v1/program", "get")
    assert not {"404", "409"} & documented("/api/v1/program", "get")
    assert not {"401", "403"} & documented("/api/v1/feedback/{token}", "post")  # no key
    assert {"404", "409"} <= documented("/api/v1/feedback/{token}", "post")
    conflict = paths["/api/v1/members"]["post"]["responses"]["409"]
    assert conflict == {"$ref": "#/components/responses/CONFLICT"}
    for item in paths.values():
        for method, operation in item.items():
            if method != "parameters" and operation.get("security"):
                assert {"401", "403"} <= set(operation["responses"]), operation["summary"]


def test_require_keeps_the_views_own_description(client) -> None:
    """auth.require adds the scopes to the docstring's description instead of replacing it."""

    def view() -> None:
        """A summary

        What the operation does, at length.
        """

    doc = auth.require("pos")(view)._apidoc["manual_doc"]  # type: ignore[attr-defined]
    assert doc["description"] == "What the operation does, at length.\n\nScopes: pos (or admin)"
    spec = client.get("/api/v1/openapi.json").json
    win_back = spec["paths"]["/api/v1/campaigns/win-back"]["post"]["description"]
    assert win_back.startswith("A win_back voucher to each member") and "Scopes: admin" in win_back
