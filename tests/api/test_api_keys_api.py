"""API keys at the HTTP edge: expiry, `last_used_at`, and the binding of a till key to a store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from loyalty.extensions import db
from loyalty.models import ApiClient, Purchase
from loyalty.models.types import utcnow
from tests import factories


@pytest.fixture
def member(client, pos) -> dict:
    return client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json


def sale(member: dict, external_id: str, **extra) -> dict:
    return {
        "external_id": external_id,
        "card_number": member["card_number"],
        "amount": 1000,
        "currency": "EUR",
        **extra,
    }


def _client(app, name: str) -> ApiClient:
    with app.app_context():
        found = db.session.scalar(select(ApiClient).where(ApiClient.name == name))
        db.session.expunge(found)
        return found


def test_an_expired_key_is_refused_like_an_unknown_one(app, client, api_key) -> None:
    live = api_key("pos", name="live", expires_at=utcnow() + timedelta(minutes=5))
    gone = api_key("pos", name="gone", expires_at=utcnow() - timedelta(seconds=1))
    assert client.get("/api/v1/program", headers=live).status_code == 200
    r = client.get("/api/v1/program", headers=gone)
    assert r.status_code == 401 and r.json["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # the key that was live expires: refused from then on, with nothing else changed
    with app.app_context():
        db.session.execute(
            update(ApiClient)
            .where(ApiClient.name == "live")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert client.get("/api/v1/program", headers=live).status_code == 401


def test_an_expired_key_in_its_grace_period_is_refused_too(app, client, api_key) -> None:
    """Expiry is the client's: a rotated key's predecessor, still in its grace period, stops
    with it."""
    key = api_key("pos", name="till", expires_at=utcnow() - timedelta(seconds=1))
    with app.app_context():
        db.session.execute(
            update(ApiClient)
            .where(ApiClient.name == "till")
            .values(
                previous_key_hash=ApiClient.key_hash,
                key_hash="f" * 64,
                previous_key_expires_at=utcnow() + timedelta(hours=1),
            )
        )
        db.session.commit()
    assert client.get("/api/v1/program", headers=key).status_code == 401


def test_last_used_at_is_written_at_most_once_a_minute(app, client, api_key) -> None:
    key = api_key("pos", name="till")
    assert _client(app, "till").last_used_at is None
    before = utcnow()
    assert client.get("/api/v1/program", headers=key).status_code == 200
    first = _client(app, "till").last_used_at
    assert first is not None and before <= first <= utcnow()
    # within the minute: not written again
    assert client.get("/api/v1/program", headers=key).status_code == 200
    assert _client(app, "till").last_used_at == first
    # a minute later (moved back by hand): written again, by a write request as by a read
    with app.app_context():
        db.session.execute(
            update(ApiClient)
            .where(ApiClient.name == "till")
            .values(last_used_at=utcnow() - timedelta(seconds=61))
        )
        db.session.commit()
    r = client.post("/api/v1/members", json={"name": "Bo"}, headers=key)
    assert r.status_code == 201
    assert _client(app, "till").last_used_at > first


def test_a_refused_key_leaves_last_used_at_alone(app, client, api_key) -> None:
    key = api_key("reports", name="reporting")
    assert client.post("/api/v1/members", json={}, headers=key).status_code == 403
    # a scope refusal is still a use of a valid key (the key was presented and known)
    assert _client(app, "reporting").last_used_at is not None
    gone = api_key("pos", name="old", revoked_at=utcnow())
    assert client.get("/api/v1/program", headers=gone).status_code == 401
    assert _client(app, "old").last_used_at is None


def test_a_bound_key_posts_for_its_store_only(app, client, api_key, member) -> None:
    till = api_key("pos", name="till-s1", store_id="S1")
    # no store given: the key's
    r = client.post("/api/v1/purchases", json=sale(member, "a"), headers=till)
    assert r.status_code == 201
    with app.app_context():
        assert db.session.get(Purchase, r.json["id"]).store_id == "S1"
    # its own store: fine
    r = client.post("/api/v1/purchases", json=sale(member, "b", store_id="S1"), headers=till)
    assert r.status_code == 201
    # another store: refused, nothing recorded
    r = client.post("/api/v1/purchases", json=sale(member, "c", store_id="S2"), headers=till)
    assert r.status_code == 403 and r.json["code"] == "store_not_allowed"
    assert list(r.json["errors"]) == ["store_id"]
    with app.app_context():
        stores = db.session.scalars(select(Purchase.store_id).order_by(Purchase.id)).all()
    assert stores == ["S1", "S1"]


def test_a_bound_keys_batch_items_for_another_store_are_rejected(
    app, client, api_key, member
) -> None:
    till = api_key("pos", name="till-s1", store_id="S1")
    body = {"purchases": [sale(member, "x1"), sale(member, "x2", store_id="S2")]}
    r = client.post("/api/v1/purchases/batch", json=body, headers=till)
    assert r.status_code == 200
    results = r.json["results"]
    assert [x["status"] for x in results] == ["created", "rejected"]
    assert results[1]["error"]["code"] == "store_not_allowed"
    assert results[1]["error"]["status"] == 403


def test_a_bound_key_returns_its_stores_purchases_and_unbound_ones(
    client, api_key, pos, member
) -> None:
    s1 = api_key("pos", name="till-s1", store_id="S1")
    s2 = api_key("pos", name="till-s2", store_id="S2")
    bought_s1 = client.post("/api/v1/purchases", json=sale(member, "p1"), headers=s1).json
    online = client.post("/api/v1/purchases", json=sale(member, "web-1"), headers=pos).json
    refused = client.post(
        f"/api/v1/purchases/{bought_s1['id']}/returns",
        json={"external_id": "r1", "amount": 500},
        headers=s2,
    )
    assert refused.status_code == 403 and refused.json["code"] == "store_not_allowed"
    ok = client.post(
        f"/api/v1/purchases/{bought_s1['id']}/returns",
        json={"external_id": "r1", "amount": 500},
        headers=s1,
    )
    assert ok.status_code == 201 and ok.json["points_reversed"] == 5
    # a purchase recorded without a store (a webshop's) may be returned at any till
    web = client.post(
        f"/api/v1/purchases/{online['id']}/returns",
        json={"external_id": "r2", "amount": 1000},
        headers=s2,
    )
    assert web.status_code == 201 and web.json["points_reversed"] == 10


def test_an_unbound_key_posts_for_any_store(app, client, pos, member) -> None:
    r = client.post("/api/v1/purchases", json=sale(member, "a", store_id="S9"), headers=pos)
    assert r.status_code == 201
    r = client.post("/api/v1/purchases", json=sale(member, "b"), headers=pos)
    with app.app_context():
        assert db.session.get(Purchase, r.json["id"]).store_id is None


def test_a_bound_key_quotes_for_its_store_only(client, api_key, member) -> None:
    till = api_key("pos", name="till-s1", store_id="S1")
    body = {"card_number": member["card_number"], "amount": 1000, "currency": "EUR"}
    assert client.post("/api/v1/checkout/quote", json=body, headers=till).status_code == 200
    r = client.post("/api/v1/checkout/quote", json={**body, "store_id": "S2"}, headers=till)
    assert r.status_code == 403 and r.json["code"] == "store_not_allowed"


def test_many_first_uses_of_one_key_at_once_all_succeed_and_note_one_time(
    app, api_key, member
) -> None:
    """Workers that find last_used_at due together: one writes, the others' conditional UPDATE
    matches nothing; reads and writes alike get their answer (no SQLITE_BUSY, no deadlock)."""
    key = api_key("pos", name="busy-till")

    def one(client, i: int) -> int:
        if i % 2:
            return client.get("/api/v1/program", headers=key).status_code
        return client.post(
            "/api/v1/purchases", json=sale(member, f"busy-{i}"), headers=key
        ).status_code

    codes = factories.run_parallel(app, 16, one)
    assert sorted(codes) == [200] * 8 + [201] * 8
    used = _client(app, "busy-till").last_used_at
    assert used is not None and utcnow() - used < timedelta(seconds=60)
