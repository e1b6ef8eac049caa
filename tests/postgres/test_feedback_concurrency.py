"""Feedback under real parallel connections on PostgreSQL: one per purchase, the rest 409."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from loyalty.extensions import db
from loyalty.models import Feedback
from tests.factories import run_parallel

pytestmark = pytest.mark.postgres

N = 8


def test_concurrent_feedbacks_for_one_purchase_make_one_and_409s(app, client, pos) -> None:
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    sale = {"external_id": "s", "member_id": member["id"], "amount": 500, "currency": "EUR"}
    purchase = client.post("/api/v1/purchases", json=sale, headers=pos).json
    body = {"member_id": member["id"], "purchase_id": purchase["id"], "nps": 9}
    results = run_parallel(
        app, N, lambda c, i: c.post("/api/v1/feedback", json=body, headers=pos), workers=N
    )
    assert sorted(r.status_code for r in results) == [201] + [409] * (N - 1)
    assert {r.json["code"] for r in results if r.status_code == 409} == {"feedback_exists"}
    assert {tuple(r.json["errors"]) for r in results if r.status_code == 409} == {("purchase_id",)}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Feedback)) == 1
