"""Parallel writers on SQLite wait for the write lock instead of failing (BEGIN IMMEDIATE)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest


@pytest.mark.sqlite
def test_parallel_writes_after_an_auth_read_all_succeed(app, admin) -> None:
    n = 8
    barrier = threading.Barrier(n)

    def one(i: int) -> int:
        client = app.test_client()
        barrier.wait()
        if i % 2:
            r = client.put("/api/v1/program", json={"name": f"shop {i}"}, headers=admin)
        else:
            r = client.post("/api/v1/members", json={"name": f"m{i}"}, headers=admin)
        return r.status_code

    with ThreadPoolExecutor(max_workers=n) as pool:
        codes = list(pool.map(one, range(n)))
    assert sorted(codes) == [200] * (n // 2) + [201] * (n // 2)
