"""The OpenAPI document describes what the service does."""

from __future__ import annotations

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
