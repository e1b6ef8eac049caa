"""Metrics benchmark: import a generated history, then time every metrics endpoint.

    .venv/bin/python bench/metrics.py [--members N] [--purchases M] [--runs 5] [--no-earn]
        [--order customer|time]
    .venv/bin/python bench/metrics.py --growth 1000000,2000000,5000000 [--runs 3]

On a throw-away PostgreSQL database (127.0.0.1:5432, user postgres; LOYALTY_BENCH_PG to change):
migrations, then a deterministic history (seed 42) of N members and M purchases over the two years
2024-11-01 .. 2026-10-31 written to a CSV and imported with `flask loyalty import-purchases` (timed:
purchases per second, points earned as for live purchases). Some members leave feedback and some
purchases use a voucher (written with COPY, so segments have their inputs). Then, in-process
through the Flask test client (the full request path: auth, schema, SQL, JSON), each metrics
endpoint is called once to warm up and `--runs` times more; the median is printed. Nothing leaves
the machine; the database is dropped at the end (unless --keep). First, as a yardstick for the
machine's speed of the hour, pgbench's built-in load runs for 5 s in a database of its own.

Between the import and the timings, the metrics rollups are brought up to date as the worker's
`metrics_rollup` job would (`flask loyalty metrics-rollup`, timed), and once more after the
feedback and vouchers are written (the worker's next minute: it notes the purchases that used a
voucher, which the segments read from `benefit_purchases`), then VACUUM ANALYZE as autovacuum
would. With --growth, the same is
done for each size in turn (members a tenth of the purchases; no re-import, no verify-ledger),
with the yardstick after each, and a table shows each figure per size and how it grew from the
smallest to the largest.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get("LOYALTY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
FIRST_DAY = datetime(2024, 11, 1, tzinfo=UTC)
DAYS = 730  # 2024-11-01 .. 2026-10-31
# The server settings an import's speed depends on, printed with the figures.
SETTINGS = ("shared_buffers", "max_wal_size", "checkpoint_timeout", "synchronous_commit")

ENDPOINTS = [
    ("retention, a quarter", "/api/v1/metrics/retention?start=2026-07-01&end=2026-09-30"),
    (
        "retention, one store",
        "/api/v1/metrics/retention?start=2026-07-01&end=2026-09-30&store_id=store-3",
    ),
    ("segments", "/api/v1/metrics/segments?as_of=2026-10-31"),
    ("cohorts, 24 months", "/api/v1/metrics/cohorts?start=2024-11-01&end=2026-10-31"),
    ("feedback, a quarter", "/api/v1/metrics/feedback?start=2026-07-01&end=2026-09-30"),
    ("vouchers, a quarter", "/api/v1/metrics/vouchers?start=2026-07-01&end=2026-09-30"),
]


def generate(path: Path, members: int, purchases: int, seed: int, by_time: bool = False) -> None:
    """A history with the shape of a real shop's: each member joins on a day of the two years,
    buys a number of times drawn from a heavy-tailed distribution (many once, a few often), at
    gaps that make some loyal and some lapse; the counts are scaled to exactly M purchases. Rows
    come customer by customer, or with `by_time` (the same rows) in the order they happened, as
    a till system's export would list them."""
    rng = random.Random(seed)
    weights = [rng.paretovariate(1.3) for _ in range(members)]
    scale = (purchases - members) / sum(weights)
    counts = [1 + int(w * scale) for w in weights]
    short = purchases - sum(counts)
    for i in range(abs(short)):  # make the total exact
        j = i % members
        if short > 0:
            counts[j] += 1
        elif counts[j] > 1:
            counts[j] -= 1
    n = 0
    rows = []
    for member, count in enumerate(counts, start=1):
        start = rng.random() * DAYS
        span = DAYS - start
        for _ in range(count):
            at = FIRST_DAY + timedelta(days=start + rng.random() * span)
            cents = int(rng.lognormvariate(7.5, 0.8))
            n += 1
            rows.append(
                [
                    f"cust-{member}",
                    f"h-{n}",
                    at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    f"{cents // 100}.{cents % 100:02d}",
                    f"store-{rng.randint(1, 20)}",
                ]
            )
    if by_time:
        rows.sort(key=lambda row: row[2])  # ISO 8601 in UTC: text order is time order
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["customer_ref", "external_id", "occurred_at", "amount", "store_id"])
        out.writerows(rows)


def add_feedback_and_vouchers(url: str, seed: int) -> tuple[int, int]:
    """Feedback from about a fifth of the members (NPS, CES, CSAT after one of their purchases)
    and a used come-back voucher on about one purchase in twenty, written with COPY."""
    rng = random.Random(seed + 1)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        rows = cur.execute(
            "SELECT DISTINCT ON (member_id) member_id, id, occurred_at FROM purchases "
            "ORDER BY member_id, id DESC"  # each member's latest purchase: deterministic
        ).fetchall()
        chosen = [r for r in rows if rng.random() < 0.2]
        with cur.copy(
            "COPY feedback (member_id, purchase_id, nps, ces, csat, channel, created_at) FROM STDIN"
        ) as copy:
            for member_id, purchase_id, at in chosen:
                copy.write_row(
                    (
                        member_id,
                        purchase_id,
                        rng.randint(0, 10),
                        rng.randint(1, 7),
                        rng.randint(1, 5),
                        "api",
                        at + timedelta(hours=2),
                    )
                )
        used = cur.execute(
            "SELECT id, member_id, occurred_at FROM purchases TABLESAMPLE BERNOULLI (5) "
            "REPEATABLE (7)"
        ).fetchall()
        with cur.copy(
            "COPY vouchers (code, member_id, kind, discount_type, value, currency, min_spend, "
            "valid_from, valid_until, status, campaign, used_at, used_purchase_id, "
            "discount_given, created_at) FROM STDIN"
        ) as copy:
            for i, (purchase_id, member_id, at) in enumerate(used):
                issued = at - timedelta(days=rng.randint(1, 30))
                copy.write_row(
                    (
                        f"B{i:09d}",
                        member_id,
                        "come_back",
                        "amount",
                        500,
                        "EUR",
                        0,
                        issued,
                        issued + timedelta(days=60),
                        "used",
                        "come_back",
                        at,
                        purchase_id,
                        500,
                        issued,
                    )
                )
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")
    return len(chosen), len(used)


def machine_speed(dbname: str) -> float | None:
    """pgbench's built-in TPC-B-like load (scale 1, 4 clients, 5 s) in a throw-away database of
    its own: a yardstick printed beside the figures, since this machine's speed changes from
    hour to hour (the import's rate moves with it). None where pgbench is missing."""
    if shutil.which("pgbench") is None:
        return None
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    try:
        base = ["-h", "127.0.0.1", "-U", "postgres"]
        init = ["pgbench", *base, "-i", "-q", "-s", "1", dbname]
        subprocess.run(init, check=True, capture_output=True, timeout=120)
        done = subprocess.run(
            ["pgbench", *base, "-n", "-c", "4", "-j", "2", "-T", "5", dbname],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        match = re.search(r"tps = ([0-9.]+)", done.stdout)
        return float(match.group(1)) if match else None
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def timed_endpoints(url: str, runs: int, endpoints: list[tuple[str, str]]) -> dict[str, float]:
    """Each endpoint in-process (the full request path), once to warm up and `runs` times more;
    the medians in ms, printed as they come."""
    os.environ["DATABASE_URL"] = url
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from loyalty.app import create_app
    from loyalty.domain import clients
    from loyalty.extensions import db
    from loyalty.models import ApiClient

    app = create_app({"RATELIMIT_ENABLED": False})  # endpoints timed back to back
    key = clients.generate_key()
    with app.app_context():
        db.session.add(
            ApiClient(
                name="bench-reports",
                key_hash=clients.hash_key(key),
                key_prefix=key[:12],
                scopes=["reports"],
            )
        )
        db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    print(f"endpoint timings, median of {runs} after a warm-up (in-process):")
    medians = {}
    for label, path_ in endpoints:
        times = []
        for i in range(runs + 1):
            t0 = time.perf_counter()
            r = client.get(path_, headers=headers)
            elapsed = time.perf_counter() - t0
            if r.status_code != 200:
                raise SystemExit(f"{path_}: {r.status_code} {r.get_data(as_text=True)}")
            if i:
                times.append(elapsed)
        medians[label] = 1000 * statistics.median(times)
        print(
            f"  {label:<22} {medians[label]:7.0f} ms "
            f"(min {1000 * min(times):.0f}, max {1000 * max(times):.0f})  {path_}",
            flush=True,
        )
        if label == "segments":
            print("   ", {k: v for k, v in r.json.items() if k not in ("segments",)})
    with app.app_context():
        db.engine.dispose()
    return medians


def flask_run(env: dict[str, str], *args: str) -> tuple[float, str]:
    """`flask --app wsgi <args>`: seconds taken and the last line it printed."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(
            f"flask {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        )
    lines = (done.stdout.strip() or "(nothing)").splitlines()
    return time.perf_counter() - t0, lines[-1]


def one_size(members: int, purchases: int, args: argparse.Namespace) -> dict[str, float]:
    """A database of this size: made, imported, rolled up, timed, dropped (unless --keep).
    Returns the endpoints' medians (ms) and the import and roll-up rates."""
    name = f"loyalty_bench_{uuid.uuid4().hex[:10]}"
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": url}
    try:
        flask_run(env, "db", "upgrade")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "history.csv"
            t0 = time.perf_counter()
            generate(path, members, purchases, args.seed, args.order == "time")
            print(
                f"generated {purchases} purchases of {members} members in {args.order} order "
                f"({path.stat().st_size / 1e6:.0f} MB CSV) in {time.perf_counter() - t0:.1f} s"
            )
            imported = ["loyalty", "import-purchases", str(path)] + (
                ["--no-earn"] if args.no_earn else []
            )
            seconds, summary = flask_run(env, *imported)
            print(summary)
            rate = purchases / seconds
            print(
                f"import: {seconds:.1f} s, {rate:,.0f} purchases/s "
                "(CLI start, parse, COPY, members, ledger entries, balances)"
            )
            if not args.growth:
                again, summary = flask_run(env, *imported)
                print(f"re-import of the same file (all already there): {again:.1f} s; {summary}")
        rolled, summary = flask_run(env, "loyalty", "metrics-rollup")
        print(f"metrics rollups caught up (the worker's job, run once): {rolled:.1f} s; {summary}")
        feedback, vouchers = add_feedback_and_vouchers(url, args.seed)
        print(f"added {feedback} feedback records and {vouchers} used vouchers; VACUUM ANALYZE")
        # the worker's next run, as within a minute of any change: notes the purchases that used
        # a voucher (benefit_purchases), which the segments would otherwise look up one by one
        again, summary = flask_run(env, "loyalty", "metrics-rollup")
        with psycopg.connect(url, autocommit=True) as conn:  # as autovacuum would after it
            conn.execute("VACUUM ANALYZE")
        print(f"metrics rollups run again (the worker's next minute): {again:.1f} s; {summary}")
        if not args.growth:
            check = subprocess.run(
                [str(BIN / "flask"), "--app", "wsgi", "loyalty", "verify-ledger"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            print("verify-ledger:", (check.stdout + check.stderr).strip().splitlines()[-1])
        medians = timed_endpoints(url, args.runs, ENDPOINTS)
        return {**medians, "import/s": rate, "roll-up s": rolled}
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def growth_table(results: dict[int, dict[str, float]]) -> None:
    """The endpoints' medians per size, and how they grew from the smallest to the largest."""
    sizes = sorted(results)
    head = " | ".join(f"{n / 1e6:g}M / {n / 1e7:g}M" for n in sizes)
    print(f"\n| endpoint (median ms) | {head} | growth {sizes[0] / 1e6:g}M→{sizes[-1] / 1e6:g}M |")
    print("|---|" + "---:|" * (len(sizes) + 1))
    for label in results[sizes[0]]:
        cells = []
        for n in sizes:
            value = results[n][label]
            cells.append(f"{value:,.0f}" if label != "roll-up s" else f"{value:.1f}")
        growth = results[sizes[-1]][label] / results[sizes[0]][label]
        print(f"| {label} | {' | '.join(cells)} | {growth:.2f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--purchases", type=int, default=1_000_000)
    parser.add_argument(
        "--growth",
        default=None,
        help="comma-separated purchase counts (members a tenth), e.g. 1000000,2000000,5000000: "
        "each size in a database of its own, then the table of how each figure grew",
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the database (name printed)")
    parser.add_argument(
        "--no-earn", action="store_true", help="import without points (purchases only)"
    )
    parser.add_argument(
        "--order",
        choices=("customer", "time"),
        default="customer",
        help="rows of the file customer by customer (default) or in time order",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        settings = conn.execute(
            "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) "
            "FROM pg_settings WHERE name = ANY(%s)",
            (list(SETTINGS),),
        ).fetchone()
        print(f"PostgreSQL {conn.info.server_version // 10000}: {settings[0] if settings else ''}")

    def yardstick() -> None:
        tps = machine_speed(f"loyalty_bench_{uuid.uuid4().hex[:10]}_pgbench")
        if tps is not None:
            print(f"machine: pgbench TPC-B (scale 1, 4 clients, 5 s) {tps:,.0f} tps", flush=True)

    yardstick()
    if not args.growth:
        one_size(args.members, args.purchases, args)
        return
    results = {}
    for purchases in (int(n) for n in args.growth.split(",")):
        print(f"\n== {purchases:,} purchases, {purchases // 10:,} members ==", flush=True)
        results[purchases] = one_size(purchases // 10, purchases, args)
        yardstick()
    growth_table(results)
    print(f"\nthe whole run: {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
