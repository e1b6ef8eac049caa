"""Test helpers shared between test modules: data made through the domain (so it is consistent)
or through the API client, and a few plain helpers. Test modules import from here or use the
fixtures of conftest.py, never from one another."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy.orm import Session

from loyalty.domain import clients, members, rewards
from loyalty.domain.context import Actor, Settings
from loyalty.models import ApiClient, Member, Reward

_seq = itertools.count(1)
SETTINGS = Settings()
WORKERS = 16


def next_id() -> int:
    return next(_seq)


def _new_client(
    session: Session, scopes: tuple[str, ...], name: str | None, **fields: Any
) -> tuple[ApiClient, str]:
    key = clients.generate_key()
    client = ApiClient(
        name=name or f"client-{next(_seq)}",
        key_hash=clients.hash_key(key),
        key_prefix=key[:12],
        scopes=list(scopes),
        **fields,
    )
    session.add(client)
    session.flush()
    return client, key


def api_client(
    session: Session, scopes: tuple[str, ...], name: str | None = None, **fields: Any
) -> str:
    """A new API client with these scopes (and other columns: `store_id`, `expires_at`,
    `revoked_at`); returns its key."""
    return _new_client(session, scopes, name, **fields)[1]


def actor(session: Session, scopes: tuple[str, ...] = ("pos",), name: str | None = None) -> Actor:
    """A new API client, as the Actor the domain functions record changes against."""
    client, _ = _new_client(session, scopes, name)
    return Actor(client_id=client.id, name=client.name)


def member(session: Session, **overrides: Any) -> Member:
    n = next(_seq)
    data: dict[str, Any] = {"name": f"Member {n}", "email": f"member{n}@example.com"}
    data.update(overrides)
    return members.enrol(session, data, settings=SETTINGS, actor=Actor.cli())


def reward(session: Session, points_cost: int, **overrides: Any) -> Reward:
    """A free-item reward in the catalogue (no stock, no per-member limit unless given)."""
    n = next(_seq)
    data: dict[str, Any] = {
        "name": f"Reward {n}",
        "kind": "free_item",
        "sku": f"SKU-{n}",
        "points_cost": points_cost,
    }
    data.update(overrides)
    return rewards.create_reward(session, data, actor=Actor.cli())


def goodwill_code(client: FlaskClient, admin: dict[str, str], member_id: int) -> str:
    """Issue a member a 1.00 goodwill voucher through the API; returns its code."""
    body = {"kind": "amount", "value": 100, "valid_days": 30, "reason": "sorry"}
    r = client.post(f"/api/v1/members/{member_id}/vouchers", json=body, headers=admin)
    assert r.status_code == 201 and r.json is not None, r.json
    return str(r.json["code"])


def run_parallel(
    app: Flask, n: int, request: Callable[[FlaskClient, int], Any], workers: int = WORKERS
) -> list[Any]:
    """`request(client, i)` for i in range(n) on `workers` threads, started together."""
    barrier = threading.Barrier(min(n, workers))
    local = threading.local()

    def one(i: int) -> Any:
        if not hasattr(local, "client"):
            local.client = app.test_client()
            barrier.wait()
        return request(local.client, i)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, range(n)))


def verify_ledger(runner: FlaskCliRunner) -> None:
    """`flask loyalty verify-ledger` finds the books in order."""
    out = runner.invoke(args=["loyalty", "verify-ledger"])
    assert out.exit_code == 0, out.output
    assert "OK" in out.output


def post_stripe_event(
    client: FlaskClient, secret: str, event_type: str, obj: dict[str, Any]
) -> Any:
    """POST /stripe/webhook with an event around `obj` (id `evt_` + its id), signed with
    `secret` the way Stripe signs (t=…,v1=HMAC-SHA256 of "t.payload")."""
    now = int(time.time())
    event = {"id": f"evt_{obj['id']}", "type": event_type, "created": now, "data": {"object": obj}}
    payload = json.dumps(event).encode()
    mac = hmac.new(secret.encode(), f"{now}.".encode() + payload, hashlib.sha256).hexdigest()
    return client.post(
        "/api/v1/stripe/webhook",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": f"t={now},v1={mac}"},
    )


def stripe_payment_intent(payment_intent: str, member_id: int, amount: int) -> dict[str, Any]:
    """A succeeded PaymentIntent in euros whose metadata names the member."""
    return {
        "id": payment_intent,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": "eur",
        "created": int(time.time()),
        "metadata": {"loyalty_member_id": str(member_id)},
    }
