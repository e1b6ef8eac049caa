"""Crash bench: nothing acknowledged is lost, nothing is done twice, under kill -9 and database
crashes.

    .venv/bin/python bench/crash.py [--seconds 60] [--clients 8] [--workers 3]
        [--kill-every 2] [--pg-restarts 4] [--job-worker-kills 3] [--redis redis://127.0.0.1:6379/0]

On a private throw-away PostgreSQL cluster (initdb in a temporary folder, a free loopback port;
never the machine's shared server) it starts gunicorn (`--workers`) and the job worker
(`flask loyalty worker`), then C clients run tills' work for S seconds: purchases, returns of
them, redemptions (reserved then confirmed or cancelled, or instant), member reads, and an admin
posting win-back campaigns (each one a job for the worker). Every write carries an
Idempotency-Key, and a client sends the same request again, with the same key, until it gets an
answer (a connection error, a 5xx, a 429 or `idempotency_key_in_flight` is not one).

Meanwhile it kills -9 a random gunicorn worker every ~K seconds (the master starts another), stops
PostgreSQL with `pg_ctl -m immediate` (no checkpoint: crash recovery at the next start) N times,
and kills -9 the job worker M times (starting another, as a supervisor would).

Then it checks, in the database: every acknowledged purchase, return and redemption exists
exactly once, under the id its answer gave; nothing refused was done anyway; no reservation is
left reserved and no member holds points; every purchase earned once, every return reversed once,
every redemption redeemed at most once; every campaign the admin was told about ran to `done`;
and `flask loyalty verify-ledger` is clean. It prints the counts and exits 1 on any loss,
duplicate or failed check. Loopback only; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

if __package__ in (None, ""):  # run as a script: bench/ is not a package on sys.path then
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accrual import card_number, load_members
from bench.stack import Client, PrivatePostgres, Stack, make_workdir

OK = (200, 201, 202)
#: members 1..LAPSED bought once, 30 days ago, and never again: what the win-back campaigns
#: (the worker's jobs) give vouchers to, a few members per batch
LAPSED = 60


@dataclass
class Op:
    """One logical request (all its attempts), as the client saw it."""

    kind: str
    ref: str  # external_id, order_ref or campaign name: how the database finds it
    status: int = 0
    id: int | None = None
    attempts: int = 0
    replayed: bool = False
    expect: str | None = None  # a redemption: the state the client drove it to
    code: str | None = None  # a refusal's problem code


@dataclass
class Log:
    ops: list[Op] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: Op) -> Op:
        with self.lock:
            self.ops.append(op)
        return op


def _note(op: Op, answer: Any) -> Op:
    op.status, op.attempts, op.replayed = answer.status, answer.attempts, answer.replayed
    if answer.status in OK and isinstance(answer.body, dict):
        op.id = answer.body.get("id")
    elif isinstance(answer.body, dict):
        op.code = answer.body.get("code") or answer.body.get("title")
    elif answer.body is not None:
        op.code = str(answer.body)[:80]
    return op


class Till:
    """One client thread's work: purchases, returns, redemptions, reads, each op's requests
    retried with its Idempotency-Key until answered."""

    def __init__(self, port: int, key: str, members: int, reward_id: int, seed: int, log: Log):
        self.http = Client(port, key)
        self.rng = random.Random(seed)
        self.members, self.reward_id, self.log = members, reward_id, log
        self.tag = f"{uuid.uuid4().hex[:6]}-{seed}"
        self.n = 0
        self.bought: list[tuple[int, int]] = []  # (purchase id, amount) acknowledged, not returned
        self.earners: list[int] = []  # members this till's purchases gave points

    def _ref(self, kind: str) -> str:
        self.n += 1
        return f"{kind}-{self.tag}-{self.n}"

    def purchase(self) -> None:
        ref = self._ref("p")
        member = self.rng.randint(LAPSED + 1, self.members)
        amount = self.rng.randint(100, 20000)
        body = {"external_id": ref, "amount": amount, "currency": "EUR"}
        body.update({"card_number": card_number(member)} if member % 2 else {"member_id": member})
        op = _note(Op("purchase", ref), self.http.call("POST", "/purchases", body, "k" + ref))
        self.log.add(op)
        if op.status in OK and op.id is not None:
            self.bought.append((op.id, amount))
            self.earners.append(member)

    def return_one(self) -> None:
        if not self.bought:
            return self.purchase()
        purchase_id, amount = self.bought.pop(self.rng.randrange(len(self.bought)))
        ref = self._ref("r")
        body = {"external_id": ref, "amount": max(1, amount // 2)}
        answer = self.http.call("POST", f"/purchases/{purchase_id}/returns", body, "k" + ref)
        self.log.add(_note(Op("return", ref), answer))
        return None

    def redeem(self) -> None:
        ref = self._ref("o")
        instant = self.rng.random() < 0.3
        body = {
            "member_id": self.rng.choice(self.earners or [1]),
            "reward_id": self.reward_id,
            "order_ref": ref,
            "instant": instant,
        }
        op = _note(Op("redemption", ref), self.http.call("POST", "/redemptions", body, "k" + ref))
        self.log.add(op)
        if op.status not in OK or op.id is None:
            return
        if instant:
            op.expect = "redeemed"
            return
        action, state = (
            ("confirm", "redeemed") if self.rng.random() < 0.6 else ("cancel", "released")
        )
        answer = self.http.call("POST", f"/redemptions/{op.id}/{action}", {}, f"k{ref}-{action}")
        self.log.add(_note(Op(action, ref), answer))
        op.expect = state if answer.status == 200 else f"? {action} answered {answer.status}"

    def read(self) -> None:
        answer = self.http.call("GET", f"/members/{self.rng.randint(1, self.members)}")
        self.log.add(_note(Op("read", ""), answer))

    def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            r = self.rng.random()
            if r < 0.5:
                self.purchase()
            elif r < 0.65:
                self.return_one()
            elif r < 0.9:
                self.redeem()
            else:
                self.read()
        self.http.close()


def campaigns(port: int, key: str, deadline: float, every: float, log: Log) -> Client:
    """The back office: a win-back campaign every `every` seconds (each a job for the worker)."""
    http = Client(port, key)
    n = 0
    while time.monotonic() < deadline:
        n += 1
        name = f"crash-{uuid.uuid4().hex[:8]}-{n}"
        body = {
            "inactive_days": 7,
            "kind": "amount",
            "value": 100,
            "valid_days": 30,
            "holdout_percent": 10,
            "campaign": name,
        }
        log.add(_note(Op("campaign", name), http.call("POST", "/campaigns/win-back", body, name)))
        time.sleep(every)
    http.close()
    return http


# --- faults --------------------------------------------------------------------------------------
@dataclass
class Faults:
    kill_every: float = 2.0  # seconds between two kill -9 of an app worker, on average
    pg_restarts: int = 4
    job_worker_kills: int = 3
    events: list[str] = field(default_factory=list)


def inflict(
    stack: Stack,
    pg: PrivatePostgres,
    faults: Faults,
    start: float,
    seconds: float,
    seed: int,
    stop: threading.Event,
) -> None:
    """Until `stop`: kill -9 app workers at random moments; restart PostgreSQL and kill the job
    worker at evenly spread moments (jittered) of the load's `seconds`."""
    rng = random.Random(seed)
    plan: list[tuple[float, str]] = []
    for kind, count, offset in (
        ("pg", faults.pg_restarts, 0.5),
        ("job", faults.job_worker_kills, 0.3),
    ):
        plan += [
            (start + seconds * (i + offset) / max(count, 1) + rng.uniform(-1, 1), kind)
            for i in range(count)
        ]
    t, end = start, start + seconds
    while faults.kill_every > 0 and (t := t + rng.expovariate(1 / faults.kill_every)) < end - 1:
        plan.append((t, "app"))
    for when, kind in sorted(plan):
        if stop.wait(max(0.0, when - time.monotonic())):
            return
        at = f"{when - start:5.1f}s"
        if kind == "app":
            pid = stack.kill_app_worker(rng)
            faults.events.append(f"{at} kill -9 app worker {pid or '(skipped: one is booting)'}")
        elif kind == "job":
            stack.kill_job_worker()
            faults.events.append(f"{at} kill -9 job worker")
        else:
            pg.crash_restart(down_seconds=rng.uniform(0.2, 1.5))
            faults.events.append(f"{at} PostgreSQL stop -m immediate, start")


# --- the checks ----------------------------------------------------------------------------------
def _rows(conn: psycopg.Connection, sql: str, params: dict) -> dict[str, list[tuple]]:
    found: dict[str, list[tuple]] = {}
    for ref, *rest in conn.execute(sql, params if "%(" in sql else None).fetchall():
        found.setdefault(ref, []).append(tuple(rest))
    return found


@dataclass
class Findings:
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)


def _check_op(op: Op, rows: list[tuple], found: Findings) -> None:
    """One operation: what its client was told against its rows in the database."""
    if len(rows) > 1:
        found.duplicated += 1
        found.problems.append(f"{op.kind} {op.ref}: {len(rows)} rows")
    elif op.status in OK and (not rows or rows[0][0] != op.id):
        found.lost += 1
        found.problems.append(f"{op.kind} {op.ref} acknowledged as id {op.id}: found {rows}")
    elif op.status not in OK and rows:
        found.duplicated += 1  # refused (or never answered), yet done
        found.problems.append(f"{op.kind} {op.ref} answered {op.status}, yet it is there: {rows}")
    elif op.kind == "redemption" and op.expect and rows and rows[0][1] != op.expect:
        found.problems.append(f"redemption {op.ref}: {rows[0][1]}, the client expects {op.expect}")
    elif op.kind == "campaign" and rows and rows[0][1] != "done":
        found.problems.append(f"campaign {op.ref} (job queued) is {rows[0][1]}, not done")


#: (what it counts, the query, whether each counts as done twice)
_TWICE = (
    (
        "ledger postings made twice for one purchase, return or redemption",
        "SELECT count(*) FROM (SELECT 1 FROM ledger_entries WHERE kind IN ('earn', 'reverse',"
        " 'redeem') GROUP BY kind, purchase_id, return_id, redemption_id, reason"
        " HAVING count(*) > 1) AS t",
        True,
    ),
    (
        "members given a campaign's voucher (or holdout) twice",
        "SELECT count(*) FROM (SELECT member_id, campaign FROM ("
        " SELECT member_id, campaign FROM vouchers WHERE kind = 'win_back' UNION ALL"
        " SELECT member_id, campaign FROM voucher_holdouts) AS v"
        " GROUP BY member_id, campaign HAVING count(*) > 1) AS t",
        True,
    ),
    (
        "members holding two open win-back vouchers (of two campaigns)",
        "SELECT count(*) FROM (SELECT member_id FROM vouchers WHERE kind = 'win_back'"
        " AND status = 'active' GROUP BY member_id HAVING count(*) > 1) AS t",
        False,
    ),
    (
        "reservations still reserved",
        "SELECT count(*) FROM redemptions WHERE status = 'reserved'",
        False,
    ),
    ("members holding points", "SELECT count(*) FROM members WHERE held <> 0", False),
)


def check(url: str, ops: list[Op], till_id: int) -> dict[str, Any]:
    """Compare what the clients were told with what the database holds."""
    found = Findings()
    queries = {
        "purchase": "SELECT external_id, id FROM purchases WHERE api_client_id = %(c)s",
        "return": "SELECT external_id, id FROM returns WHERE api_client_id = %(c)s",
        "redemption": "SELECT order_ref, id, status FROM redemptions WHERE api_client_id = %(c)s",
        "campaign": "SELECT name, id, status FROM campaigns",
    }
    with psycopg.connect(url) as conn:
        tables = {kind: _rows(conn, sql, {"c": till_id}) for kind, sql in queries.items()}
        for op in ops:
            if op.kind in tables:
                _check_op(op, tables[op.kind].get(op.ref, []), found)
        counts = {}
        for what, sql, twice in _TWICE:
            counts[what] = n = int(conn.execute(sql).fetchone()[0])
            if n:
                found.duplicated += n if twice else 0
                found.problems.append(f"{n} {what}")
    return {
        "lost": found.lost,
        "duplicated": found.duplicated,
        "stuck_reservations": counts["reservations still reserved"],
        "problems": found.problems,
    }


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(sql).fetchone()[0])


def wait_for_jobs(
    stack: Stack, url: str, names: list[str], timeout: float, sweep_now: bool
) -> None:
    """Until every campaign is done: the worker runs them; a job lost with a killed worker is
    handed to a new one by the campaign sweep (every minute; `sweep_now`: run it at once)."""
    deadline = time.monotonic() + timeout
    last_sweep = time.monotonic()
    while time.monotonic() < deadline:
        stack.ensure_job_worker()
        with psycopg.connect(url) as conn:
            left = conn.execute(
                "SELECT count(*) FROM campaigns WHERE name = ANY(%s) AND status <> 'done'", (names,)
            ).fetchone()[0]
        if not left:
            return
        if sweep_now and time.monotonic() - last_sweep > 6:  # after LOYALTY_JOB_GRACE_SECONDS
            stack.run_job_now("campaign_sweep")
            last_sweep = time.monotonic()
        time.sleep(0.5)


# --- the run -------------------------------------------------------------------------------------
def setup(stack: Stack, url: str, members: int) -> dict[str, Any]:
    stack.cli("db", "upgrade")
    stack.start(wait=False)  # the servers boot while the members and keys are made
    load_members(url, members)
    with ThreadPoolExecutor(2) as pool:  # two CLI processes at once
        made = pool.map(stack.create_key, ("crash-till", "crash-admin"), ("pos", "admin"))
        (till, till_id), (admin, _) = made
    stack.wait_ready()
    answer = Client(stack.port, admin).call(
        "POST",
        "/rewards",
        {"name": "Coffee", "kind": "free_item", "sku": "COFFEE", "points_cost": 5},
        "reward-1",
    )
    if answer.status != 201:
        raise RuntimeError(f"reward: {answer.status} {answer.body}")
    long_ago = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    lapsed = [
        {
            "external_id": f"old-{m}",
            "member_id": m,
            "amount": 100,
            "currency": "EUR",
            "occurred_at": long_ago,
        }
        for m in range(1, LAPSED + 1)
    ]
    old = Client(stack.port, till).call("POST", "/purchases/batch", {"purchases": lapsed}, "old")
    if old.status != 200 or any(r["status"] != "created" for r in old.body["results"]):
        raise RuntimeError(f"lapsed purchases: {old.status} {old.body}")
    return {"till": till, "till_id": till_id, "admin": admin, "reward_id": answer.body["id"]}


def load(
    stack: Stack, keys: dict[str, Any], args: Any, faults: Faults, pg: PrivatePostgres
) -> tuple:
    log = Log()
    start = time.monotonic()
    deadline = start + args.seconds
    tills = [
        Till(stack.port, keys["till"], args.members, keys["reward_id"], 1000 + i, log)
        for i in range(args.clients)
    ]
    threads = [threading.Thread(target=t.run, args=(deadline,)) for t in tills]
    office: list[Client] = []
    threads.append(
        threading.Thread(
            target=lambda: office.append(
                campaigns(stack.port, keys["admin"], deadline, args.campaign_every, log)
            )
        )
    )
    stop = threading.Event()
    chaos = threading.Thread(
        target=inflict, args=(stack, pg, faults, start, args.seconds, args.seed, stop)
    )
    for t in [*threads, chaos]:
        t.start()
    for t in threads:
        t.join(timeout=args.seconds + 300)
    stop.set()
    chaos.join(timeout=300)
    requests = sum(t.http.requests for t in tills) + sum(c.requests for c in office)
    failed = sum(t.http.failed_attempts for t in tills) + sum(c.failed_attempts for c in office)
    return log.ops, requests, failed, time.monotonic() - start


def run(args: Any) -> dict[str, Any]:
    """The whole bench; returns the counts (`ok` false on any loss, duplicate or problem)."""
    began = time.monotonic()
    workdir = make_workdir("loyalty-crash-")
    pg = PrivatePostgres(workdir)
    stack: Stack | None = None
    try:
        pg.start()
        url = pg.create_database("loyalty_crash")
        stack = Stack(workdir, url, workers=args.workers, redis_url=args.redis)
        keys = setup(stack, url, args.members)
        setup_seconds = time.monotonic() - began
        faults = Faults(args.kill_every, args.pg_restarts, args.job_worker_kills)
        ops, requests, failed, elapsed = load(stack, keys, args, faults, pg)
        stack.wait_ready()
        names = [op.ref for op in ops if op.kind == "campaign" and op.status in OK]
        wait_for_jobs(stack, url, names, args.job_timeout, args.sweep_now)
        result = check(url, ops, keys["till_id"])
        verify = stack.cli("loyalty", "verify-ledger", check=False)
        if verify.returncode != 0:
            result["problems"].append("verify-ledger: " + (verify.stdout + verify.stderr)[-2000:])
        writes = [op for op in ops if op.kind != "read"]
        by_kind = Counter(op.kind for op in writes if op.status in OK)
        refusals = Counter(
            f"{op.kind} {op.status} {op.code}" for op in writes if op.status not in OK
        )
        unanswered = [op for op in ops if op.status in (0, 429, 500, 502, 503, 504)]
        if unanswered:
            result["problems"].append(
                f"{len(unanswered)} requests never answered: "
                + "; ".join(
                    f"{op.kind} {op.ref} {op.status} {op.code} x{op.attempts}"
                    for op in unanswered[:10]
                )
            )
        result.update(
            seconds=round(elapsed, 1),
            requests=requests,
            operations=len(ops),
            acknowledged=sum(1 for op in writes if op.status in OK),
            refused=sum(1 for op in writes if op.status not in OK),
            retried=sum(1 for op in writes if op.attempts > 1),
            replayed=sum(1 for op in writes if op.replayed),
            failed_attempts=failed,
            by_kind=dict(by_kind),
            refusals=dict(refusals),
            setup_seconds=round(setup_seconds, 1),
            app_workers_killed=stack.workers_killed,
            pg_restarts=pg.restarts,
            job_worker_kills=stack.job_worker_kills,
            campaigns=len(names),
            win_back_vouchers=_count(url, "SELECT count(*) FROM vouchers WHERE kind = 'win_back'"),
            verify_ledger=verify.stdout.strip().splitlines()[-1] if verify.stdout else "",
            events=faults.events,
        )
        result["crashes"] = stack.workers_killed + pg.restarts + stack.job_worker_kills
        result["ok"] = not result["problems"] and result["lost"] == 0 and result["duplicated"] == 0
        return result
    finally:
        if stack is not None:
            stack.stop()
        try:
            pg.stop()
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)


def report(result: dict[str, Any]) -> None:
    print(
        f"set-up: {result['setup_seconds']} s; load: {result['seconds']} s, "
        f"{result['requests']} HTTP requests, {result['operations']} operations"
    )
    print(f"acknowledged writes: {result['acknowledged']} {result['by_kind']}")
    print(f"refused (4xx answers): {result['refused']} {result['refusals']}")
    print(
        f"retried: {result['retried']} operations ({result['failed_attempts']} failed attempts; "
        f"{result['replayed']} answered by a replay of the stored response)"
    )
    print(
        f"crashes: {result['crashes']} ({result['app_workers_killed']} app workers kill -9, "
        f"{result['pg_restarts']} PostgreSQL immediate restarts, "
        f"{result['job_worker_kills']} job worker kill -9)"
    )
    print(
        f"jobs: {result['campaigns']} campaigns queued, all done "
        f"({result['win_back_vouchers']} win-back vouchers issued)"
        if not any(p.startswith("campaign") for p in result["problems"])
        else "jobs: NOT all done"
    )
    print(f"stuck reservations: {result['stuck_reservations']}")
    print(f"verify-ledger: {result['verify_ledger']}")
    print(f"lost = {result['lost']}, duplicated = {result['duplicated']}")
    for problem in result["problems"][:50]:
        print("PROBLEM", problem)
    print("RESULT " + json.dumps({k: v for k, v in result.items() if k != "events"}))
    print("PASS" if result["ok"] else "FAIL")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    p.add_argument("--members", type=int, default=200)
    p.add_argument("--kill-every", type=float, default=2.0, help="seconds between app kills (mean)")
    p.add_argument("--pg-restarts", type=int, default=4)
    p.add_argument("--job-worker-kills", type=int, default=3)
    p.add_argument("--campaign-every", type=float, default=3.0)
    p.add_argument("--job-timeout", type=float, default=180, help="seconds to wait for the jobs")
    p.add_argument(
        "--sweep-now",
        action="store_true",
        help="run the campaign sweep at once instead of waiting for its minute",
    )
    p.add_argument("--redis", default=None, help="job queue on this Redis (default: SQLite file)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    p.add_argument("--verbose", action="store_true", help="print every fault as it was made")
    return p


def main() -> None:
    args = parser().parse_args()
    result = run(args)
    if args.verbose:
        for event in result["events"]:
            print("  " + event)
    report(result)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
