"""Every error is problem+json with a stable code; nothing a client sends gives a 500."""

from __future__ import annotations

PROBLEM = "application/problem+json"


def assert_problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, (r.status_code, r.data[:300])
    assert r.headers["Content-Type"] == PROBLEM
    body = r.json
    assert body["status"] == status and body["code"] == code
    assert set(body) == {"type", "title", "status", "detail", "code", "errors"}
    return body


def test_missing_malformed_unknown_and_revoked_keys_are_401(client, runner, pos) -> None:
    assert_problem(client.get("/api/v1/program"), 401, "unauthorized")
    assert_problem(
        client.get("/api/v1/program", headers={"Authorization": "Basic x"}), 401, "unauthorized"
    )
    r = client.get("/api/v1/program", headers={"Authorization": "Bearer lk_nope"})
    assert_problem(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    out = runner.invoke(args=["loyalty", "create-api-key", "gone", "--scope", "pos"])
    key = out.output.strip().splitlines()[-1]
    assert (
        client.get("/api/v1/program", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    )
    runner.invoke(args=["loyalty", "revoke-api-key", "gone"])
    assert_problem(
        client.get("/api/v1/program", headers={"Authorization": f"Bearer {key}"}),
        401,
        "unauthorized",
    )


def test_a_pos_key_on_an_admin_route_is_403(client, pos) -> None:
    body = assert_problem(client.put("/api/v1/program", json={}, headers=pos), 403, "forbidden")
    assert "admin" in body["detail"]


def test_auth_is_checked_before_the_body(client) -> None:
    assert_problem(client.post("/api/v1/members", data="{bad"), 401, "unauthorized")


def test_a_10_mb_body_is_413(client, pos) -> None:
    big = b'{"name": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    r = client.post("/api/v1/members", data=big, content_type="application/json", headers=pos)
    assert_problem(r, 413, "payload_too_large")


def test_invalid_json_is_400(client, pos) -> None:
    r = client.post("/api/v1/members", data="{", content_type="application/json", headers=pos)
    assert_problem(r, 400, "invalid_json")


def test_a_json_body_that_is_not_an_object_is_422(client, pos) -> None:
    for body in ("[1,2]", '"x"', "3", "null"):
        r = client.post("/api/v1/members", data=body, content_type="application/json", headers=pos)
        assert r.status_code in (400, 422), (body, r.status_code)
        assert r.headers["Content-Type"] == PROBLEM


def test_wrong_types_are_422_naming_the_field(client, admin) -> None:
    r = client.put("/api/v1/program", json={"points_per_unit": "ten", "rounding": 1}, headers=admin)
    body = assert_problem(r, 422, "validation_error")
    assert set(body["errors"]) == {"points_per_unit", "rounding"}


def test_unknown_route_and_wrong_method(client, pos) -> None:
    assert_problem(client.get("/api/v1/nope", headers=pos), 404, "not_found")
    r = client.delete("/api/v1/program", headers=pos)
    assert_problem(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]


def test_health_and_readiness_need_no_key(client) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json["status"] == "ok"


def test_strings_no_database_can_store_are_422_not_500(client, pos, admin) -> None:
    for bad in ("a\x00b", "\ud818x"):
        r = client.post("/api/v1/members", json={"name": bad}, headers=pos)
        assert r.status_code == 422 and list(r.json["errors"]) == ["name"], r.json
    m = client.post("/api/v1/members", json={}, headers=pos).json
    r = client.post(
        f"/api/v1/members/{m['id']}/adjustments",
        json={"points": 1, "reason": "\x00"},
        headers=admin,
    )
    assert r.status_code == 422 and list(r.json["errors"]) == ["reason"]
    r = client.get("/api/v1/members?q=%00", headers=admin)
    assert r.status_code == 422 and list(r.json["errors"]) == ["q"]
