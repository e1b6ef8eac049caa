"""Idempotency-Key on POSTs that create something (api.md, Conventions)."""

from __future__ import annotations

from sqlalchemy import func, select

from loyalty.extensions import db
from loyalty.models import Member


def count_members(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Member))


def test_replay_returns_the_first_response_and_creates_nothing(app, client, pos) -> None:
    headers = {**pos, "Idempotency-Key": "enrol-ann-1"}
    first = client.post(
        "/api/v1/members", json={"name": "Ann", "email": "a@example.com"}, headers=headers
    )
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    # same body, keys in another order and other white space: still the same request
    again = client.post(
        "/api/v1/members",
        data='{ "email": "a@example.com",  "name": "Ann" }',
        content_type="application/json",
        headers=headers,
    )
    assert again.status_code == 201
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count_members(app) == 1


def test_same_key_different_body_is_409(client, pos) -> None:
    headers = {**pos, "Idempotency-Key": "k1"}
    assert client.post("/api/v1/members", json={"name": "Ann"}, headers=headers).status_code == 201
    r = client.post("/api/v1/members", json={"name": "Bob"}, headers=headers)
    assert r.status_code == 409 and r.json["code"] == "idempotency_key_reused"
    assert "Idempotency-Key" in r.json["errors"]


def test_keys_are_per_client(app, client, api_key) -> None:
    a, b = api_key("pos"), api_key("pos")
    body = {"name": "Ann"}
    r1 = client.post("/api/v1/members", json=body, headers={**a, "Idempotency-Key": "same"})
    r2 = client.post("/api/v1/members", json=body, headers={**b, "Idempotency-Key": "same"})
    assert r1.status_code == r2.status_code == 201 and r1.json["id"] != r2.json["id"]
    assert count_members(app) == 2


def test_a_refused_request_stores_nothing_so_the_retry_runs(app, client, pos) -> None:
    headers = {**pos, "Idempotency-Key": "retry-me"}
    client.post("/api/v1/members", json={"email": "taken@example.com"}, headers=pos)
    r = client.post("/api/v1/members", json={"email": "taken@example.com"}, headers=headers)
    assert r.status_code == 409 and r.json["code"] == "email_taken"
    # the blocker goes away; the same key and body now performs the request
    with app.app_context():
        db.session.execute(db.update(Member).values(email=None))
        db.session.commit()
    r = client.post("/api/v1/members", json={"email": "taken@example.com"}, headers=headers)
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers


def test_key_longer_than_255_is_refused(client, pos) -> None:
    r = client.post("/api/v1/members", json={}, headers={**pos, "Idempotency-Key": "k" * 256})
    assert r.status_code == 422 and "Idempotency-Key" in r.json["errors"]
    ok = client.post("/api/v1/members", json={}, headers={**pos, "Idempotency-Key": "k" * 255})
    assert ok.status_code == 201
