"""Expiry benchmark: the expiry job on 1M lapsed lots.

    .venv/bin/python bench/expiry.py [--members 100000] [--lots-per-member 10] [--batch 10000]

On a throw-away PostgreSQL database (127.0.0.1:5432, user postgres; LOYALTY_BENCH_PG to change):
migrations, then N members with L lots each (set-based SQL: a credit entry per lot, the lots,
the balances), every lot lapsed. Then, in-process, the job the worker runs
(`jobs.tasks.expire_points`, a transaction per --batch members) is timed, then once more (it
must expire nothing), and `verify-ledger`'s checks run. Prints the seconds and lots per second;
the target is under 60 s for 1M lots. Nothing leaves the machine; the database is dropped at the
end (unless --keep).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get("LOYALTY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
LOT_POINTS = 100
AS_OF = datetime(2027, 1, 1, tzinfo=UTC)

# members 1..N, each with L credit entries of LOT_POINTS and their lots (lapsing on one of 30
# days of 2026)
FILL = """
INSERT INTO members (points, held, available_floor, pending, marketing_consent, created_at,
                     updated_at)
SELECT {lots} * {points}, 0, 0, 0, false, now(), now()
  FROM generate_series(1, {members}) n;
INSERT INTO ledger_entries (member_id, kind, points, balance_after, reason, actor, created_at)
SELECT m, 'adjust', {points}, {points} * k, 'bench', 'bench', now()
  FROM generate_series(1, {members}) m, generate_series(1, {lots}) k
 ORDER BY m, k;
INSERT INTO point_lots (member_id, entry_id, points, remaining, expires_at, created_at)
SELECT member_id, id, points, points,
       timestamptz '2026-01-01 23:00:00+00' + (id % 30) * interval '1 day', created_at
  FROM ledger_entries;
VACUUM ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--lots-per-member", type=int, default=10)
    parser.add_argument("--batch", type=int, default=10_000, help="members per transaction")
    parser.add_argument("--keep", action="store_true", help="keep the database (name printed)")
    args = parser.parse_args()
    lots = args.members * args.lots_per_member

    name = f"loyalty_bench_{uuid.uuid4().hex[:10]}"
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        print(f"PostgreSQL {conn.info.server_version // 10000}, database {name}")
    env = {**os.environ, "DATABASE_URL": url}
    try:
        flask = [str(BIN / "flask"), "--app", "wsgi"]
        subprocess.run(
            [*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        t0 = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in FILL.format(
                members=args.members, lots=args.lots_per_member, points=LOT_POINTS
            ).split(";"):
                if statement.strip():
                    conn.execute(statement)
        print(
            f"{args.members:,} members, {lots:,} lapsed lots written "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        run(url, args.batch, lots)
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(url: str, batch: int, lots: int) -> None:
    """The job, timed, twice; then the ledger's checks."""
    os.environ["DATABASE_URL"] = url
    sys.path.insert(0, str(ROOT))
    from loyalty.app import create_app
    from loyalty.domain import ledger
    from loyalty.extensions import db
    from loyalty.jobs import tasks

    app = create_app({})
    with app.app_context():
        t0 = time.perf_counter()
        done = tasks.expire_points(AS_OF, batch)
        seconds = time.perf_counter() - t0
        print(
            f"expire_points: {done['lots']:,} lots, {done['points']:,} points of "
            f"{done['members']:,} members in {seconds:.1f} s "
            f"({done['lots'] / seconds:,.0f} lots/s; target: {lots:,} lots < 60 s)"
        )
        t0 = time.perf_counter()
        again = tasks.expire_points(AS_OF, batch)
        print(
            f"second run: {again['lots']} lots, {again['points']} points "
            f"in {time.perf_counter() - t0:.2f} s"
        )
        t0 = time.perf_counter()
        result = ledger.verify(db.session())
        state = "OK" if result.ok else f"{len(result.problems)} problems: {result.problems[:3]}"
        print(f"verify-ledger: {state} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
