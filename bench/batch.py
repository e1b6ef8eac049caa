"""Batch benchmark: purchases per second through POST /api/v1/purchases/batch (an offline till
syncing up).

    .venv/bin/python bench/batch.py [--members 100000] [--clients 4] [--seconds 20] [--rounds 3]

On a throw-away PostgreSQL database set up as bench/accrual.py does (migrations, N members with
cards, a pos API key), gunicorn with the settings of gunicorn.conf.py on a free loopback port;
C clients each post batches of SIZE new purchases (random members' cards, an Idempotency-Key per
call) back to back for S seconds, per round. Prints, per round and as medians of the rounds,
purchases created per second and the p50/p99 time of one call.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import accrual


def post_batches(port: int, key: str, args: argparse.Namespace, deadline: float, out: list) -> None:
    """One client: batches back to back until the deadline; (seconds, start, created) per call."""
    rng = random.Random()
    tag = uuid.uuid4().hex[:10]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    n = 0
    while time.perf_counter() < deadline:
        n += 1
        items = [
            {
                "external_id": f"batch-{tag}-{n}-{i}",
                "card_number": accrual.card_number(rng.randint(1, args.members)),
                "amount": rng.randint(100, 20000),
                "currency": "EUR",
            }
            for i in range(args.size)
        ]
        headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"batch-{tag}-{n}",
        }
        started = time.perf_counter()
        conn.request("POST", "/api/v1/purchases/batch", json.dumps({"purchases": items}), headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{resp.status}: {body[:500]!r}")
        created = sum(r["status"] == "created" for r in json.loads(body)["results"])
        out.append((time.perf_counter() - started, started, created))


def run_round(port: int, key: str, args: argparse.Namespace) -> dict[str, float]:
    calls: list[tuple[float, float, int]] = []
    deadline = time.perf_counter() + args.seconds
    threads = [
        threading.Thread(target=post_batches, args=(port, key, args, deadline, calls))
        for _ in range(args.clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = max(s + t for s, t, _ in calls) - min(t for _, t, _ in calls)
    times = sorted(s for s, _, _ in calls)
    return {
        "calls": len(calls),
        "rate": sum(c for _, _, c in calls) / elapsed,
        "p50_ms": 1000 * times[len(times) // 2],
        "p99_ms": 1000 * times[min(len(times) - 1, int(len(times) * 0.99))],
    }


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = accrual.free_port()
    cmd = [str(accrual.BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "wsgi:app"]
    server = subprocess.Popen(cmd, cwd=accrual.ROOT, env=env, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return server, port
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("gunicorn did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=500, help="purchases per call")
    args = parser.parse_args()

    dbname, url = accrual.create_database()
    server = None
    try:
        env = {**os.environ, **accrual.SERVER_ENV, "DATABASE_URL": url}
        accrual.run_cli(env, "db", "upgrade")
        accrual.load_members(url, args.members)
        out = accrual.run_cli(env, "loyalty", "create-api-key", "bench-till", "--scope", "pos")
        key = out.strip().splitlines()[-1]
        server, port = start_server(env)
        run_round(port, key, argparse.Namespace(**{**vars(args), "seconds": 3}))  # warm-up
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
        rows = []
        for r in range(1, args.rounds + 1):
            rows.append(run_round(port, key, args))
            print(
                f"round {r}: {rows[-1]['rate']:.0f} purchases/s, {rows[-1]['calls']} calls of "
                f"{args.size}, p50 {rows[-1]['p50_ms']:.0f} ms, p99 {rows[-1]['p99_ms']:.0f} ms",
                flush=True,
            )
        med = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
        print(
            f"median of {len(rows)}: {med['rate']:.0f} purchases/s; per call of {args.size}: "
            f"p50 {med['p50_ms']:.0f} ms, p99 {med['p99_ms']:.0f} ms ({args.clients} clients)"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        accrual.drop_database(dbname)


if __name__ == "__main__":
    main()
