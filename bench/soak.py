"""Soak: N minutes of mixed traffic; does anything grow (memory, connections, latency), does
anything fail?

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 4] [--rate 40] [--workers 3]
        [--redis redis://127.0.0.1:6379/0]

On a private throw-away PostgreSQL cluster (as bench/crash.py: initdb in a temporary folder, a
free loopback port) it starts gunicorn (`--workers`) and the job worker, then C clients send,
paced to `--rate` requests per second in all (the soak is about growth, not throughput): card
lookups and member reads, quotes, purchases, returns of them, redemptions (instant, reserved then
cancelled, and some reserved and left to expire: the reservation time is set to 1 minute, so the
worker's `release_expired` has work), and an admin's win-back campaign every minute (a job).

Every `--sample` seconds (30) it records the RSS of the gunicorn master and of each worker, of
the job worker, the database's connections (pg_stat_activity), the job queue's depth (the app's
`/metrics`), Redis's memory (with `--redis`), and the interval's requests, errors (5xx and
connection errors), p50 and p99 latency. It prints a table and a verdict: the app workers' RSS
and the connections, mean of the last third against the first third (within 10 % and 2
connections), the p50 latency of the last third against the first (medians of the samples,
within 2x + 10 ms; p99 is shown, not judged: on a shared machine it follows the neighbours'
load), and errors = 0. Exit 1 when a check fails. Loopback only.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accrual import card_number, load_members
from bench.stack import Client, PrivatePostgres, Stack, make_workdir, rss_kib


@dataclass
class Window:
    """What the clients saw since the last sample."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    refusals: int = 0
    codes: Counter = field(default_factory=Counter)  # every refusal and error, whole run
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, status: int, body: Any = None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if status == 0 or status >= 500:
                self.errors += 1
            elif status >= 400:
                self.refusals += 1
            if status == 0 or status >= 400:
                code = body.get("code") if isinstance(body, dict) else None
                self.codes[f"{status} {code}"] += 1

    def take(self) -> tuple[list[float], int, int]:
        with self.lock:
            out = (self.latencies, self.errors, self.refusals)
            self.latencies, self.errors, self.refusals = [], 0, 0
            return out


class Shopper:
    """One client thread: a mix of a till's and a webshop's calls, paced to `rate` per second."""

    def __init__(
        self, port: int, key: str, members: int, reward_id: int, seed: int, window: Window
    ):
        self.http = Client(port, key, give_up_after=0.0)  # no retries: a failure is an error
        self.rng = random.Random(seed)
        self.members, self.reward_id, self.window = members, reward_id, window
        self.tag, self.n = f"{uuid.uuid4().hex[:6]}-{seed}", 0
        self.bought: list[tuple[int, int]] = []

    def _call(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        started = time.perf_counter()
        answer = self.http.call(method, path, body, key)
        self.window.add(time.perf_counter() - started, answer.status, answer.body)
        return answer

    def _member(self) -> int:
        return self.rng.randint(1, self.members)

    def step(self) -> None:
        r, m = self.rng.random(), self._member()
        self.n += 1
        ref = f"{self.tag}-{self.n}"
        if r < 0.25:
            self._call("GET", f"/cards/{card_number(m)}")
        elif r < 0.4:
            self._call("GET", f"/members/{m}")
        elif r < 0.55:
            body = {"member_id": m, "amount": self.rng.randint(100, 20000), "currency": "EUR"}
            self._call("POST", "/checkout/quote", body)
        elif r < 0.8:
            amount = self.rng.randint(100, 20000)
            body = {
                "external_id": ref,
                "member_id": m,
                "amount": amount,
                "currency": "EUR",
                "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": amount}],
            }
            answer = self._call("POST", "/purchases", body, "k" + ref)
            if answer.status == 201 and len(self.bought) < 1000:
                self.bought.append((answer.body["id"], amount))
        elif r < 0.88 and self.bought:
            purchase_id, amount = self.bought.pop(self.rng.randrange(len(self.bought)))
            body = {"external_id": ref, "amount": max(1, amount // 3)}
            self._call("POST", f"/purchases/{purchase_id}/returns", body, "k" + ref)
        else:
            self.redeem(m, ref)

    def redeem(self, member: int, ref: str) -> None:
        instant = self.rng.random() < 0.5
        body = {
            "member_id": member,
            "reward_id": self.reward_id,
            "order_ref": ref,
            "instant": instant,
        }
        answer = self._call("POST", "/redemptions", body, "k" + ref)
        if answer.status == 201 and not instant and self.rng.random() < 0.8:
            self._call("POST", f"/redemptions/{answer.body['id']}/cancel", {}, f"k{ref}-c")
        # else: left reserved, to expire after the programme's reservation_minutes

    def run(self, deadline: float, interval: float) -> None:
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            self.step()
            next_at += interval * self.rng.uniform(0.5, 1.5)
            time.sleep(max(0.0, next_at - time.monotonic()))
        self.http.close()


def office(port: int, key: str, deadline: float, window: Window) -> None:
    """A win-back campaign a minute (a job for the worker)."""
    http = Client(port, key, give_up_after=0.0)
    while time.monotonic() < deadline:
        name = f"soak-{uuid.uuid4().hex[:8]}"
        body = {
            "inactive_days": 1,
            "kind": "amount",
            "value": 100,
            "valid_days": 30,
            "campaign": name,
        }
        started = time.perf_counter()
        answer = http.call("POST", "/campaigns/win-back", body, name)
        window.add(time.perf_counter() - started, answer.status, answer.body)
        time.sleep(min(60.0, max(0.0, deadline - time.monotonic())))
    http.close()


# --- sampling ----------------------------------------------------------------------------------
def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _queue_depth(stack: Stack) -> float | None:
    try:
        with urllib.request.urlopen(stack.base + "/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    match = re.search(r"^loyalty_job_queue_depth (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def _redis_memory(url: str | None) -> int | None:
    if not url:
        return None
    import redis

    return int(redis.Redis.from_url(url).info("memory")["used_memory"])


def sample(stack: Stack, url: str, window: Window, redis_url: str | None, t: float) -> dict:
    latencies, errors, refusals = window.take()
    workers = stack.app_workers()
    with psycopg.connect(url) as conn:
        connections = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchone()[0]
    return {
        "t": t,
        "requests": len(latencies),
        "errors": errors,
        "refusals": refusals,
        "p50_ms": 1000 * _percentile(latencies, 0.5),
        "p99_ms": 1000 * _percentile(latencies, 0.99),
        "workers": len(workers),
        "worker_rss_mib": sum(rss_kib(p) for p in workers) / 1024,
        "worker_rss_max_mib": max((rss_kib(p) for p in workers), default=0) / 1024,
        "master_rss_mib": rss_kib(stack.server.pid) / 1024 if stack.server else 0,
        "job_rss_mib": rss_kib(stack.job_worker.pid) / 1024 if stack.job_worker else 0,
        "pg_connections": connections,
        "queue_depth": _queue_depth(stack),
        "redis_mib": (m / 2**20) if (m := _redis_memory(redis_url)) is not None else None,
    }


def verdict(rows: list[dict]) -> list[tuple[str, bool, str]]:
    third = max(1, len(rows) // 3)
    first, last = rows[:third], rows[-third:]

    def mean(part: list[dict], key: str) -> float:
        return statistics.fmean(r[key] for r in part)

    rss0, rss1 = mean(first, "worker_rss_mib"), mean(last, "worker_rss_mib")
    job0, job1 = mean(first, "job_rss_mib"), mean(last, "job_rss_mib")
    con0, con1 = mean(first, "pg_connections"), mean(last, "pg_connections")

    def median(part: list[dict], key: str) -> float:  # latency: one busy spell is not growth
        return statistics.median(r[key] for r in part)

    p0, p1 = median(first, "p50_ms"), median(last, "p50_ms")
    q0, q1 = median(first, "p99_ms"), median(last, "p99_ms")
    errors = sum(r["errors"] for r in rows)
    return [
        (
            "app workers' RSS",
            rss1 <= rss0 * 1.10,
            f"{rss0:.1f} → {rss1:.1f} MiB ({rss1 / rss0 - 1:+.1%})",
        ),
        (
            "job worker's RSS",
            job1 <= job0 * 1.10,
            f"{job0:.1f} → {job1:.1f} MiB ({job1 / job0 - 1:+.1%})",
        ),
        ("PostgreSQL connections", con1 <= con0 + 2, f"{con0:.1f} → {con1:.1f}"),
        ("p50 latency", p1 <= 2 * p0 + 10, f"{p0:.1f} → {p1:.1f} ms (p99 {q0:.1f} → {q1:.1f} ms)"),
        ("errors (5xx, connection)", errors == 0, str(errors)),
    ]


def print_table(rows: list[dict], head: bool = True) -> None:
    title = (
        f"{'t (s)':>6} {'req':>6} {'err':>4} {'4xx':>5} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'wrk':>3} {'wrk RSS':>8} {'max':>6} {'master':>7} {'job RSS':>8} {'PG conn':>7} "
        f"{'queue':>5} {'redis':>6}"
    )
    if head:
        print(title)
    for r in rows:
        queue = "-" if r["queue_depth"] is None else f"{r['queue_depth']:.0f}"
        redis_mib = "-" if r["redis_mib"] is None else f"{r['redis_mib']:.1f}"
        print(
            f"{r['t']:>6.0f} {r['requests']:>6} {r['errors']:>4} {r['refusals']:>5} "
            f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['workers']:>3} "
            f"{r['worker_rss_mib']:>8.1f} {r['worker_rss_max_mib']:>6.1f} "
            f"{r['master_rss_mib']:>7.1f} {r['job_rss_mib']:>8.1f} {r['pg_connections']:>7} "
            f"{queue:>5} {redis_mib:>6}"
        )
    if head:
        print("(RSS in MiB: wrk = sum over the gunicorn workers, max = the largest one)")


def _setup(stack: Stack, url: str, members: int) -> dict[str, Any]:
    stack.cli("db", "upgrade")
    load_members(url, members)
    till, _ = stack.create_key("soak-till", "pos")
    admin, _ = stack.create_key("soak-admin", "admin")
    stack.start()
    http = Client(stack.port, admin)
    reward = http.call(
        "POST",
        "/rewards",
        {"name": "Coffee", "kind": "free_item", "sku": "COFFEE", "points_cost": 5},
        "reward-1",
    )
    program = http.call("GET", "/program").body
    program["reservation_minutes"] = 1
    http.call("PUT", "/program", program)
    for m in range(1, members + 1, 7):  # some points to spend from the start
        http.call("POST", f"/members/{m}/adjustments", {"points": 200, "reason": "soak"}, f"a{m}")
    http.close()
    return {"till": till, "admin": admin, "reward_id": reward.body["id"]}


def run(args: Any) -> list[dict]:
    workdir = make_workdir("loyalty-soak-")
    pg = PrivatePostgres(workdir)
    stack: Stack | None = None
    try:
        pg.start()
        url = pg.create_database("loyalty_soak")
        stack = Stack(workdir, url, workers=args.workers, redis_url=args.redis)
        keys = _setup(stack, url, args.members)
        window = Window()
        start = time.monotonic()
        deadline = start + args.minutes * 60
        interval = args.clients / args.rate
        threads = [
            threading.Thread(
                target=Shopper(
                    stack.port, keys["till"], args.members, keys["reward_id"], i, window
                ).run,
                args=(deadline, interval),
            )
            for i in range(args.clients)
        ]
        threads.append(
            threading.Thread(target=office, args=(stack.port, keys["admin"], deadline, window))
        )
        for t in threads:
            t.start()
        rows = []
        while (now := time.monotonic()) < deadline:
            time.sleep(min(args.sample, max(0.0, deadline - now)))
            rows.append(sample(stack, url, window, args.redis, time.monotonic() - start))
            if args.verbose:
                print_table(rows[-1:], head=len(rows) == 1)
        for t in threads:
            t.join(timeout=120)
        rows[-1]["codes"] = dict(window.codes)
        return rows
    finally:
        if stack is not None:
            stack.stop()
        try:
            pg.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rate", type=float, default=40, help="requests per second, all clients")
    p.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    p.add_argument("--members", type=int, default=2000)
    p.add_argument("--sample", type=float, default=30, help="seconds between two samples")
    p.add_argument("--redis", default=None, help="job queue and rate limits on this Redis")
    p.add_argument("--verbose", action="store_true", help="print each sample as it is taken")
    args = p.parse_args()
    started = time.strftime("%H:%M:%S")
    with open("/proc/loadavg") as f:
        load_before = f.read().split()[:3]
    rows = run(args)
    with open("/proc/loadavg") as f:
        load_after = f.read().split()[:3]
    print(
        f"soak: {args.minutes} min from {started}, {args.clients} clients at {args.rate}/s, "
        f"{args.workers} gunicorn workers, queue on {'Redis' if args.redis else 'SQLite'}; "
        f"load average before {' '.join(load_before)}, after {' '.join(load_after)}"
    )
    print_table(rows)
    total = sum(r["requests"] for r in rows)
    print(
        f"requests: {total}, errors: {sum(r['errors'] for r in rows)}, "
        f"4xx answers: {sum(r['refusals'] for r in rows)}; by status and code: {rows[-1]['codes']}"
    )
    checks = verdict(rows)
    for name, ok, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    passed = all(ok for _, ok, _ in checks)
    print("VERDICT: " + ("no growth, no errors" if passed else "FAILED"))
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
