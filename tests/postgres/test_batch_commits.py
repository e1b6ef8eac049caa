"""/purchases/batch: each item commits without waiting for the disk; one flush before the answer."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from loyalty.api import uow
from loyalty.domain import purchases

pytestmark = pytest.mark.postgres


def test_batch_items_commit_without_waiting_and_the_answer_waits_once(
    client, pos, monkeypatch
) -> None:
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    seen: list[str] = []
    flushes: list[None] = []
    real_record, real_flush = purchases.record_purchase, uow.flush_commits

    def record(session, data, **kwargs):
        seen.append(session.execute(text("SHOW synchronous_commit")).scalar())
        return real_record(session, data, **kwargs)

    def flush() -> None:
        flushes.append(None)
        real_flush()

    monkeypatch.setattr(purchases, "record_purchase", record)
    monkeypatch.setattr("loyalty.api.purchases.flush_commits", flush)
    sale = {"member_id": member["id"], "amount": 1000, "currency": "EUR"}
    body = {"purchases": [{**sale, "external_id": f"b{i}"} for i in range(3)]}
    r = client.post("/api/v1/purchases/batch", json=body, headers=pos)
    assert [x["status"] for x in r.json["results"]] == ["created"] * 3
    assert seen == ["off"] * 3 and len(flushes) == 1
    client.post("/api/v1/purchases", json={**sale, "external_id": "single"}, headers=pos)
    assert seen[-1] == "on"  # a single purchase waits for its own commit
