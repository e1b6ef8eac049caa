"""Rate limits: per API key, per address, stricter for lookups (enumeration), the public
feedback link and the Stripe webhook's failed signatures; 429 problem+json with Retry-After and
the X-RateLimit-* headers; counts in memory, or shared through Redis by several app servers.

Each test makes its own app (as a second app server is made) with low limits on the run's
database; the session's app has limits no test reaches (conftest.py)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from limits.storage import MemoryStorage, RedisStorage

from loyalty.extensions import db, limiter
from loyalty.ratelimits import SETTINGS, ProcessMemory
from tests import factories

REDIS_URL = "redis://127.0.0.1:6379/0"
HIGH = "1000/minute"
WEBHOOK_SECRET = "whsec_rate_limits"


@pytest.fixture
def limited_app(make_app) -> Callable[..., Flask]:
    """`limited_app(LOYALTY_RATE_LIMIT_LOOKUPS="3/minute")`: another app server on the run's
    database with these settings, every other limit high."""
    return lambda **overrides: make_app(**{**dict.fromkeys(SETTINGS, HIGH), **overrides})


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the machine's Redis; its keys are deleted after."""
    prefix = f"loyalty-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    conn = redis.Redis.from_url(REDIS_URL)
    keys = list(conn.scan_iter(f"{prefix}*"))
    if keys:
        conn.delete(*keys)
    conn.close()


def _key(app: Flask, *scopes: str) -> dict[str, str]:
    with app.app_context():
        key = factories.api_client(db.session, scopes or ("admin",))
        db.session.commit()
    return {"Authorization": f"Bearer {key}"}


def _card(client: FlaskClient, admin: dict[str, str]) -> str:
    r = client.post("/api/v1/members", json={"name": "Ada"}, headers=admin)
    assert r.status_code == 201, r.json
    return r.json["card_number"]


def _assert_rate_limited(r: Any, limit: int) -> None:
    assert r.status_code == 429
    assert r.mimetype == "application/problem+json"
    assert r.json["code"] == "rate_limited" and r.json["status"] == 429
    assert r.json["type"] == "urn:loyalty:problem:rate_limited"
    assert 0 < int(r.headers["Retry-After"]) <= 60
    assert r.headers["X-RateLimit-Limit"] == str(limit)
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert int(r.headers["X-RateLimit-Reset"]) > 0  # a Unix time


def test_card_and_member_lookups_share_a_stricter_limit_per_key(limited_app) -> None:
    server = limited_app(LOYALTY_RATE_LIMIT_LOOKUPS="3/minute")
    client = server.test_client()
    admin, till, other_till = _key(server), _key(server, "pos"), _key(server, "pos")
    card = _card(client, admin)
    member_id = client.get(f"/api/v1/cards/{card}", headers=admin).json["member"]["id"]

    remaining = []
    for path in (f"/api/v1/cards/{card}", f"/api/v1/members/{member_id}", "/api/v1/cards/{card}"):
        r = client.get(path.replace("{card}", card), headers=till)
        assert r.status_code == 200, r.json
        assert r.headers["X-RateLimit-Limit"] == "3"
        remaining.append(r.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]

    r = client.get(f"/api/v1/cards/{card}", headers=till)
    _assert_rate_limited(r, 3)
    assert "lookups" in r.json["detail"]
    assert client.head(f"/api/v1/cards/{card}", headers=till).status_code == 429
    assert client.get(f"/api/v1/members/{member_id}", headers=till).status_code == 429
    # an unknown card is a lookup too: enumeration cannot go on by guessing numbers
    assert client.get("/api/v1/cards/9900000000000002", headers=till).status_code == 429
    # other operations of the same key, and lookups of another key, go on
    assert client.get("/api/v1/program", headers=till).status_code == 200
    assert client.get(f"/api/v1/cards/{card}", headers=other_till).status_code == 200


def test_a_member_search_is_a_lookup_in_the_query_or_in_a_body(limited_app) -> None:
    server = limited_app(LOYALTY_RATE_LIMIT_LOOKUPS="3/minute")
    client = server.test_client()
    staff = _key(server)
    assert client.get("/api/v1/members?q=Ada", headers=staff).status_code == 200
    for _ in range(2):
        r = client.post("/api/v1/members/search", json={"q": "Ada"}, headers=staff)
        assert r.status_code == 200, r.json
    _assert_rate_limited(client.post("/api/v1/members/search", json={"q": "A"}, headers=staff), 3)
    _assert_rate_limited(client.get("/api/v1/members?q=Ada", headers=staff), 3)
    assert client.post("/api/v1/members", json={"name": "Bo"}, headers=staff).status_code == 201


def test_every_request_of_a_key_counts_against_its_limit(limited_app) -> None:
    server = limited_app(LOYALTY_RATE_LIMIT_PER_KEY="4/minute")
    client = server.test_client()
    till, other = _key(server, "pos"), _key(server, "pos")
    statuses = [client.get("/api/v1/program", headers=till).status_code for _ in range(4)]
    assert statuses == [200] * 4
    r = client.post("/api/v1/checkout/quote", json={}, headers=till)  # any route, any method
    _assert_rate_limited(r, 4)
    assert r.json["detail"] == "Too many requests with this API key."
    assert client.get("/api/v1/program", headers=other).status_code == 200


def test_requests_from_one_address_share_its_limit_whatever_the_key(limited_app) -> None:
    """Made-up keys each get a count of their own; the address's count stops them."""
    server = limited_app(LOYALTY_RATE_LIMIT_PER_IP="5/minute")
    client = server.test_client()
    made_up = [{"Authorization": f"Bearer lk_made_up_{n}"} for n in range(5)]
    assert [client.get("/api/v1/program", headers=h).status_code for h in made_up] == [401] * 5
    r = client.get("/api/v1/program", headers=_key(server))
    _assert_rate_limited(r, 5)
    assert r.json["detail"] == "Too many requests from this address."
    elsewhere = server.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert elsewhere.get("/api/v1/program", headers=_key(server)).status_code == 200


def test_behind_a_proxy_the_forwarded_address_is_counted(limited_app) -> None:
    server = limited_app(LOYALTY_PROXY_HOPS=1, LOYALTY_RATE_LIMIT_PER_IP="2/minute")
    client = server.test_client()
    first = {"X-Forwarded-For": "198.51.100.1"}
    assert [client.get("/api/v1/program", headers=first).status_code for _ in range(2)] == [401] * 2
    assert client.get("/api/v1/program", headers=first).status_code == 429
    second = {"X-Forwarded-For": "198.51.100.2"}
    assert client.get("/api/v1/program", headers=second).status_code == 401


def test_without_a_proxy_a_forged_forwarded_address_changes_nothing(limited_app) -> None:
    client = limited_app(LOYALTY_RATE_LIMIT_PER_IP="2/minute").test_client()
    statuses = [
        client.get("/api/v1/program", headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
        for n in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_health_checks_and_cors_preflights_are_never_limited(limited_app) -> None:
    server = limited_app(LOYALTY_RATE_LIMIT_PER_IP="1/minute")
    client = server.test_client()
    assert [client.get("/healthz").status_code for _ in range(3)] == [200] * 3
    assert all(client.options("/api/v1/program").status_code == 200 for _ in range(3))
    assert client.get("/api/v1/program", headers=_key(server)).status_code == 200
    assert client.get("/api/v1/program", headers=_key(server)).status_code == 429


def test_the_public_feedback_link_is_limited_per_address(limited_app) -> None:
    server = limited_app(LOYALTY_RATE_LIMIT_FEEDBACK="2/minute")
    client = server.test_client()
    forged = "/api/v1/feedback/MQ.forged"
    assert [client.post(forged, json={"nps": 9}).status_code for _ in range(2)] == [404, 404]
    r = client.post(forged, json={"nps": 9})
    _assert_rate_limited(r, 2)
    assert r.json["detail"] == "Too much feedback from this address."
    # the till's own feedback call (with a key) is not the public link
    assert client.get("/api/v1/program", headers=_key(server)).status_code == 200
    elsewhere = server.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.8"
    assert elsewhere.post(forged, json={"nps": 9}).status_code == 404


def _webhook(client: FlaskClient, signature: str | None = None, body: bytes = b"{}") -> Any:
    if signature is None:
        obj = {"id": f"cus_{uuid.uuid4().hex[:10]}", "object": "customer"}
        return factories.post_stripe_event(client, WEBHOOK_SECRET, "customer.created", obj)
    return client.post(
        "/api/v1/stripe/webhook",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": signature},
    )


def test_only_failed_webhook_signatures_count_against_the_webhook_limit(limited_app) -> None:
    server = limited_app(
        LOYALTY_RATE_LIMIT_WEBHOOK_FAILURES="2/minute", STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET
    )
    client = server.test_client()
    # Stripe's own deliveries, however many, use none of it
    for _ in range(4):
        r = _webhook(client)
        assert r.status_code == 200 and r.json["status"] == "ignored", r.json
        assert r.headers["X-RateLimit-Remaining"] == "2"
    # nor does a signed body it cannot use
    now = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{now}.not json".encode(), hashlib.sha256)
    r = _webhook(client, f"t={now},v1={mac.hexdigest()}", b"not json")
    assert r.status_code == 200 and r.json["status"] == "ignored"
    assert r.headers["X-RateLimit-Remaining"] == "2"
    forged = [_webhook(client, "t=1,v1=00") for _ in range(2)]
    assert [r.json["code"] for r in forged] == ["invalid_signature"] * 2
    r = _webhook(client, "t=1,v1=00")
    _assert_rate_limited(r, 2)
    assert "signature" in r.json["detail"]
    # the address is refused until the window ends; Stripe, elsewhere, is not
    assert _webhook(client).status_code == 429
    stripe = server.test_client()
    stripe.environ_base["REMOTE_ADDR"] = "192.0.2.9"
    assert _webhook(stripe).status_code == 200


def test_without_redis_counts_stay_in_the_process(limited_app) -> None:
    """One server: memory, no Redis round trip; two servers without Redis count apart."""
    first = limited_app(LOYALTY_REDIS_URL=None, LOYALTY_RATE_LIMIT_LOOKUPS="2/minute")
    second = limited_app(LOYALTY_REDIS_URL=None, LOYALTY_RATE_LIMIT_LOOKUPS="2/minute")
    with first.app_context():
        assert isinstance(limiter.storage, MemoryStorage)
    key = _key(first, "pos")
    card = _card(first.test_client(), _key(first))
    a, b = first.test_client(), second.test_client()
    statuses = [c.get(f"/api/v1/cards/{card}", headers=key).status_code for c in (a, b, a, b)]
    assert statuses == [200, 200, 200, 200]
    assert a.get(f"/api/v1/cards/{card}", headers=key).status_code == 429


def test_two_app_servers_on_one_redis_share_one_limit(limited_app, redis_prefix) -> None:
    settings = {
        "LOYALTY_REDIS_URL": REDIS_URL,
        "LOYALTY_RATE_LIMIT_PREFIX": redis_prefix,
        "LOYALTY_RATE_LIMIT_LOOKUPS": "3/minute",
    }
    first, second = limited_app(**settings), limited_app(**settings)
    with first.app_context():
        assert isinstance(limiter.storage, RedisStorage)
    key = _key(first, "pos")
    card = _card(first.test_client(), _key(first))
    a, b = first.test_client(), second.test_client()
    remaining = [
        c.get(f"/api/v1/cards/{card}", headers=key).headers["X-RateLimit-Remaining"]
        for c in (a, b, a)
    ]
    assert remaining == ["2", "1", "0"]
    _assert_rate_limited(b.get(f"/api/v1/cards/{card}", headers=key), 3)
    _assert_rate_limited(a.get(f"/api/v1/cards/{card}", headers=key), 3)
    stored = redis.Redis.from_url(REDIS_URL).keys(f"{redis_prefix}*")
    assert stored, "the counts are in Redis, under the configured prefix"
    assert not any(key["Authorization"][7:].encode() in k for k in stored)  # a digest only


def test_an_unreachable_redis_falls_back_to_counting_in_memory(limited_app, caplog) -> None:
    """No 500 and no request let through unlimited: the process counts alone until Redis
    answers again."""
    server = limited_app(
        LOYALTY_REDIS_URL="redis://127.0.0.1:1/0",  # nothing listens on port 1
        LOYALTY_RATE_LIMIT_PER_KEY="2/minute",
    )
    client = server.test_client()
    key = _key(server)
    statuses = [client.get("/api/v1/program", headers=key).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert "falling back to in-memory storage" in caplog.text


@pytest.mark.parametrize("name", SETTINGS)
def test_a_limit_that_is_not_one_stops_the_start(limited_app, name) -> None:
    with pytest.raises(ValueError):
        limited_app(**{name: "lots"})


def test_429_and_its_code_are_in_the_openapi_document(client) -> None:
    spec = client.get("/api/v1/openapi.json").json
    assert "rate_limited" in spec["components"]["schemas"]["ErrorCode"]["enum"]
    too_many = spec["components"]["responses"]["TOO_MANY_REQUESTS"]
    schema = too_many["content"]["application/problem+json"]["schema"]
    assert schema["allOf"][1]["properties"]["code"]["enum"] == ["rate_limited"]
    assert set(too_many["headers"]) == {
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    }
    assert too_many["headers"]["Retry-After"]["required"] is True
    for item in spec["paths"].values():
        for method, operation in item.items():
            if method != "parameters":
                assert "429" in operation["responses"], operation["summary"]


def test_a_counted_answer_says_its_limit_and_only_a_429_when_to_come_back(limited_app) -> None:
    server = limited_app(LOYALTY_RATE_LIMIT_PER_KEY="2/minute")
    client = server.test_client()
    key = _key(server)
    r = client.get("/api/v1/program", headers=key)
    assert r.status_code == 200
    assert (r.headers["X-RateLimit-Limit"], r.headers["X-RateLimit-Remaining"]) == ("2", "1")
    assert "Retry-After" not in r.headers and "X-RateLimit-Reset" not in r.headers
    assert client.get("/api/v1/program", headers=key).headers["X-RateLimit-Remaining"] == "0"
    r = client.get("/api/v1/program", headers=key)
    _assert_rate_limited(r, 2)
    assert int(r.headers["X-RateLimit-Reset"]) - time.time() <= 61


def test_rate_limits_can_be_switched_off(limited_app) -> None:
    server = limited_app(LOYALTY_RATE_LIMIT_PER_KEY="1/minute", RATELIMIT_ENABLED=False)
    client = server.test_client()
    key = _key(server)
    answers = [client.get("/api/v1/program", headers=key) for _ in range(3)]
    assert [r.status_code for r in answers] == [200] * 3
    assert all("X-RateLimit-Limit" not in r.headers for r in answers)


def test_counting_in_memory_starts_no_thread(limited_app, monkeypatch) -> None:
    """limits' MemoryStorage starts a timer thread every 10 ms under load to drop expired
    counts; ours drops them in line (loyalty.ratelimits.ProcessMemory)."""
    server = limited_app(LOYALTY_REDIS_URL=None)
    client, key = server.test_client(), _key(server)
    started = []
    monkeypatch.setattr(threading.Thread, "start", lambda thread: started.append(thread))
    for _ in range(3):
        assert client.get("/api/v1/program", headers=key).status_code == 200
        time.sleep(0.02)
    assert started == []


def test_expired_counts_start_a_new_window_and_are_dropped() -> None:
    storage = ProcessMemory()
    assert [storage.incr("a", 0.05), storage.incr("a", 0.05), storage.incr("b", 60)] == [1, 2, 1]
    assert storage.get("a") == 2
    time.sleep(0.06)
    assert storage.get("a") == 0
    storage._next_sweep = 0.0  # the next count sweeps (at most once a second otherwise)
    assert storage.incr("b", 60) == 2
    assert "a" not in storage.storage and "a" not in storage.expirations
    assert storage.incr("a", 60) == 1


def test_counts_go_back_to_redis_once_it_answers_again(
    limited_app, redis_prefix, monkeypatch, caplog
) -> None:
    server = limited_app(
        LOYALTY_REDIS_URL=REDIS_URL,
        LOYALTY_RATE_LIMIT_PREFIX=redis_prefix,
        LOYALTY_RATE_LIMIT_PER_KEY="3/minute",
    )
    client, key = server.test_client(), _key(server)
    caplog.set_level(logging.INFO, logger="loyalty.ratelimits")
    with server.app_context():
        limits = limiter.limits
    redis_storage = limits.primary
    monkeypatch.setattr(redis_storage, "incr", _broken)
    assert client.get("/api/v1/program", headers=key).status_code == 200  # counted in memory
    assert "falling back to in-memory storage" in caplog.text
    with server.app_context():
        assert isinstance(limiter.storage, MemoryStorage)
    monkeypatch.undo()  # Redis answers again; it is tried again after a second
    limits._retry_at = 0.0
    statuses = [client.get("/api/v1/program", headers=key).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # a new count, in Redis: 3 a minute
    assert "rate limit storage recovered" in caplog.text
    conn = redis.Redis.from_url(REDIS_URL)
    assert conn.keys(f"{redis_prefix}*")
    conn.close()
    redis_storage.storage.close()  # the app's connection, not left to the garbage collector


def _broken(*_args: Any, **_kwargs: Any) -> int:
    raise redis.ConnectionError("Redis is gone")


def test_a_setting_may_join_several_limits(limited_app) -> None:
    server = limited_app(LOYALTY_RATE_LIMIT_PER_KEY="100/hour;2/minute")
    client, key = server.test_client(), _key(server)
    answers = [client.get("/api/v1/program", headers=key) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers[:2]] == ["1", "0"]
    _assert_rate_limited(answers[2], 2)  # the shortest window's state
