"""Two win-back campaigns at once on PostgreSQL (the worker runs jobs on several threads): a member
holding an open win-back voucher gets none from the other campaign, whichever commits first."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from loyalty.domain import vouchers
from loyalty.domain.context import Actor
from loyalty.extensions import db
from loyalty.models import Voucher
from loyalty.models.types import utcnow

pytestmark = pytest.mark.postgres

TERMS = {"inactive_days": 7, "kind": "amount", "value": 100, "valid_days": 30}


def _batch(
    app, campaign: str, written: threading.Event | None = None, go: threading.Event | None = None
) -> int:
    with app.app_context():
        session = db.session()
        batch = vouchers.win_back_batch(
            session,
            campaign,
            TERMS,
            cutoff=utcnow() - timedelta(days=7),
            after_member_id=None,
            limit=100,
            actor=Actor(client_id=None, name="test", admin=True),
        )
        if written is not None and go is not None:
            written.set()
            go.wait(10)
        session.commit()
        return batch.issued


def test_a_member_gets_one_open_win_back_voucher_from_two_concurrent_campaigns(
    app, client, pos
) -> None:
    long_ago = (utcnow() - timedelta(days=30)).isoformat()
    for i in range(3):
        m = client.post("/api/v1/members", json={}, headers=pos).json
        sale = {"external_id": f"old-{i}", "member_id": m["id"], "amount": 100,
                "currency": "EUR", "occurred_at": long_ago}  # fmt: skip
        assert client.post("/api/v1/purchases", json=sale, headers=pos).status_code == 201

    issued: dict[str, int] = {}
    written, go = threading.Event(), threading.Event()
    a = threading.Thread(target=lambda: issued.update(a=_batch(app, "camp-a", written, go)))
    a.start()
    assert written.wait(10)  # campaign A has issued its vouchers, not committed them yet
    b = threading.Thread(target=lambda: issued.update(b=_batch(app, "camp-b")))
    b.start()
    b.join(0.5)  # B runs (or waits for A) meanwhile
    go.set()
    a.join(20)
    b.join(20)
    assert issued == {"a": 3, "b": 0}
    with app.app_context():
        per_member = db.session.execute(
            select(Voucher.member_id, func.count())
            .where(Voucher.kind == "win_back", Voucher.status == "active")
            .group_by(Voucher.member_id)
        ).all()
    assert sorted(n for _, n in per_member) == [1, 1, 1]
