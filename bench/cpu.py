"""CPU per purchase, in-process: the real app on PostgreSQL, a purchase through Flask's test client.

    .venv/bin/python bench/cpu.py [--purchases 4000] [--profile] [--sort cumulative] [--top 60]
        [--config '{"RATELIMIT_ENABLED": false}']

Process CPU time, not wall time: what one purchase costs the app server's Python (the database's
own work and the round trips' waiting are not in it), so it moves less with the machine's noise
than requests per second do; still, compare versions in interleaved runs and quote medians.
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
from bench import accrual

MEMBERS = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purchases", type=int, default=4000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--config", default="{}", help="settings to override, as JSON")
    args = parser.parse_args()
    dbname, url = accrual.create_database()
    try:
        env = {**os.environ, **accrual.SERVER_ENV, "DATABASE_URL": url}
        accrual.run_cli(env, "db", "upgrade")
        accrual.load_members(url, MEMBERS)
        out = accrual.run_cli(env, "loyalty", "create-api-key", "cpu-till", "--scope", "pos")
        key = out.strip().splitlines()[-1]
        os.environ.update({**accrual.SERVER_ENV, "DATABASE_URL": url})
        from loyalty.app import create_app

        client = create_app(json.loads(args.config)).test_client()

        def purchase(i: int) -> None:
            accrual.post_in_process(client, key, i % MEMBERS + 1, "cpu")

        for i in range(300):  # warm-up: connections, prepared statements, caches
            purchase(i)
        started = time.process_time()
        for i in range(args.purchases):
            purchase(i)
        cpu = (time.process_time() - started) / args.purchases
        print(f"CPU per purchase: {cpu * 1e6:.0f} µs ({args.purchases} purchases)")
        if args.profile:
            profile = cProfile.Profile(time.process_time)  # CPU, not waits
            profile.enable()
            for i in range(args.purchases):
                purchase(i)
            profile.disable()
            pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)
    finally:
        accrual.drop_database(dbname)


if __name__ == "__main__":
    main()
