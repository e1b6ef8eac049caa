"""CPU per purchase, in-process: the real app on PostgreSQL, a purchase through Flask's test client.

    .venv/bin/python bench/cpu.py [--purchases 4000] [--earning-rules] [--profile]
        [--sort cumulative] [--top 60] [--config '{"RATELIMIT_ENABLED": false}']

Process CPU time, not wall time: what one purchase costs the app server's Python, and apart
from it what it costs the database server (the CPU time of the PostgreSQL backends serving this
database, from /proc: the same machine), so they move less with the machine's noise than
requests per second do; still, compare versions in interleaved runs and quote medians.
`--earning-rules`: bench/ab.py's five rules and tier table.
`--config` overrides settings (JSON), e.g. to switch a layer off and see what it costs;
`--profile` prints a cProfile listing of a second run. A throw-away database (bench/accrual.py's
set-up: migrations, 1,000 members with cards); rate limits raised out of the way as in every
benchmark. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import ab, accrual

MEMBERS = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purchases", type=int, default=4000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--config", default="{}", help="settings to override, as JSON")
    parser.add_argument("--earning-rules", action="store_true")
    args = parser.parse_args()
    dbname, url = accrual.create_database()
    try:
        env = {**os.environ, **accrual.SERVER_ENV, "DATABASE_URL": url}
        accrual.run_cli(env, "db", "upgrade")
        accrual.load_members(url, MEMBERS)
        out = accrual.run_cli(env, "loyalty", "create-api-key", "cpu-till", "--scope", "pos")
        key = out.strip().splitlines()[-1]
        if args.earning_rules:
            ab.add_earning_rules(env, url)
        os.environ.update({**accrual.SERVER_ENV, "DATABASE_URL": url})
        from loyalty.app import create_app

        client = create_app(json.loads(args.config)).test_client()

        def purchase(i: int) -> None:
            accrual.post_in_process(client, key, i % MEMBERS + 1, "cpu")

        for i in range(300):  # warm-up: connections, prepared statements, caches
            purchase(i)
        server = server_cpu(url, dbname)
        started, wall = time.process_time(), time.perf_counter()
        for i in range(args.purchases):
            purchase(i)
        cpu = (time.process_time() - started) / args.purchases
        wall = (time.perf_counter() - wall) / args.purchases
        server = (server_cpu(url, dbname) - server) / args.purchases
        rules = ", earning rules and tiers" if args.earning_rules else ""
        print(
            f"per purchase{rules}: app CPU {cpu * 1e6:.0f} µs, database CPU {server * 1e6:.0f} µs,"
            f" wall {wall * 1e6:.0f} µs ({args.purchases} purchases, one after another)"
        )
        if args.profile:
            profile = cProfile.Profile(time.process_time)  # CPU, not waits
            profile.enable()
            for i in range(args.purchases):
                purchase(i)
            profile.disable()
            pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)
    finally:
        accrual.drop_database(dbname)


def server_cpu(url: str, dbname: str) -> float:
    """Seconds of CPU the PostgreSQL backends serving the app's connections to `dbname` have
    used (user + system), read from /proc: the server runs on this machine."""
    import psycopg

    with psycopg.connect(url) as conn:
        pids = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'",  # not autovacuum's, which come and go
                (dbname,),
            )
        ]
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
