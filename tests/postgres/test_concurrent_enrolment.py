"""Concurrency on PostgreSQL with real parallel connections (one per thread)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from loyalty.extensions import db
from loyalty.models import Card, IdempotencyRecord, Member

pytestmark = pytest.mark.postgres

N = 20


def _fire(app, n: int, make_request) -> list:
    barrier = threading.Barrier(n)

    def one(i: int):
        client = app.test_client()
        barrier.wait()
        return make_request(client, i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_twenty_enrolments_with_one_email_make_one_member(app, pos) -> None:
    results = _fire(
        app,
        N,
        lambda c, i: c.post(
            "/api/v1/members", json={"name": f"m{i}", "email": "same@example.com"}, headers=pos
        ),
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * (N - 1), codes
    assert {r.json["code"] for r in results if r.status_code == 409} == {"email_taken"}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Member)) == 1


def test_twenty_retries_with_one_idempotency_key_make_one_member_and_one_answer(app, pos) -> None:
    headers = {**pos, "Idempotency-Key": "enrol-once"}
    results = _fire(
        app, N, lambda c, i: c.post("/api/v1/members", json={"name": "Ann"}, headers=headers)
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json["id"] for r in results}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in results) == N - 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Member)) == 1
        assert db.session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 1


def test_twenty_activations_of_one_pre_printed_card_make_one_owner(app, pos) -> None:
    results = _fire(
        app,
        N,
        lambda c, i: c.post(
            "/api/v1/members", json={"card_number": "9900000000000002"}, headers=pos
        ),
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * (N - 1), codes
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Card)) == 1
