"""A/B of servers under the accrual load, interleaved on one database (for a noisy machine).

    .venv/bin/python bench/ab.py 'sync=wsgi:app' 'gthread=wsgi:app|--worker-class gthread' \
        'old=/tmp/wt/old::wsgi:app' 'bare=bench.bare_app:app' [--rounds 3] [--seconds 10]

Each NAME=[DIR::]TARGET[|FLAGS] is a gunicorn server on its own loopback port, started in DIR
(another checkout, e.g. a git worktree of an older commit; default: this one) with `--chdir
DIR`, so that DIR's own `loyalty` package is imported; a TARGET `granian:MODULE:APP` is served
by granian (WSGI) instead, FLAGS then being granian's. Each server's output goes to
$TMPDIR/<database>_NAME.log. All share one throw-away database, set up by this tree's migrations
and CLI, with the accrual bench's members and key. After a warm-up and ANALYZE, each round loads
every server in turn for S seconds, starting one server later than the round before
(bench/accrual.py's client: wrk where installed), so slow and fast spells of the machine fall on
all of them alike. Prints each load and the medians per server, and the tables read by
sequential scans (a missing index or a stale plan shows up there).

`--earning-rules`: the programme gets five active earning rules (multipliers and bonuses with
weekday, window, minimum-spend, category and tier conditions; no budget) and a tier table before
the load, so `new=wsgi:app old=/tmp/wt/old::wsgi:app` (a worktree of the commit before earning
rules) measures what earning by rules and tiers costs the purchase path.
`--earning-rules-for NAME[,NAME]`: only the servers named get them, from a second database made
from the first (`CREATE DATABASE … TEMPLATE`: the same members, cards and key), so that
`rules=wsgi:app none=wsgi:app --earning-rules-for rules` measures what rules and tiers cost the
same code, side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import accrual


def server_command(spec: str, port: int) -> tuple[list[str], Path]:
    """The command line and working directory of one [DIR::]TARGET[|FLAGS] server."""
    head, _, flags = spec.partition("|")
    where, _, target = head.rpartition("::")
    cwd = Path(where).resolve() if where else accrual.ROOT
    if target.startswith("granian:"):
        cmd = [str(accrual.BIN / "granian"), "--interface", "wsgi", "--working-dir", str(cwd)]
        cmd += flags.split()
        return [*cmd, "--host", "127.0.0.1", "--port", str(port), target[8:]], cwd
    cmd = [str(accrual.BIN / "gunicorn"), "--chdir", str(cwd), *flags.split()]
    return [*cmd, "--bind", f"127.0.0.1:{port}", target], cwd


def wait_until_listening(server: subprocess.Popen, port: int, log: str) -> None:
    for _ in range(600):
        if server.poll() is not None:
            raise SystemExit(f"server exited; see {log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}; see {log}")


#: (name, kind, value, conditions): what --earning-rules adds, all active and stackable.
EARNING_RULES = [
    ("Tuesdays double", "multiplier", "2", {"weekdays": [2]}),
    ("Weekend bonus", "bonus_points", "10", {"weekdays": [6, 7], "min_spend": 2000}),
    ("Big basket", "bonus_points", "5", {"min_spend": 1000}),
    ("Coffee x3", "multiplier", "3", {"categories": ["coffee"]}),
    ("Gold extra", "multiplier", "1.25", {"tiers": ["Gold"], "starts_at": "2020-01-01T00:00:00"}),
]
TIERS = [
    {"name": "Silver", "qualifying_spend": 10000, "multiplier": 1.25, "benefits": []},
    {"name": "Gold", "qualifying_spend": 50000, "multiplier": 1.5, "benefits": []},
]


ENSURE_PROGRAM = """
from wsgi import app
from loyalty.domain import program
from loyalty.extensions import db
with app.app_context():
    program.ensure_program(db.session())
    db.session.commit()
"""


def add_earning_rules(env: dict[str, str], url: str) -> None:
    """The five rules of EARNING_RULES and the tier table, written as the API would (the
    programme row made by the app first)."""
    subprocess.run(
        [str(accrual.BIN / "python"), "-c", ENSURE_PROGRAM],
        cwd=accrual.ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    with psycopg.connect(url) as conn:
        for name, kind, value, conditions in EARNING_RULES:
            conn.execute(
                "INSERT INTO earning_rules (name, kind, value, conditions, priority, stackable,"
                " active, budget_used, version, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, 0, true, true, 0, 1, now(), now())",
                (name, kind, value, Jsonb(conditions)),
            )
        conn.execute(
            "UPDATE program SET rules_version = %s, tiers = %s WHERE id = 1",
            (int(time.time() * 1000), Jsonb(TIERS)),
        )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("servers", nargs="+", help="NAME=[DIR::]TARGET[|flags]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--earning-rules", action="store_true", help="five active earning rules and tiers on"
    )
    parser.add_argument(
        "--earning-rules-for",
        default="",
        metavar="NAME[,NAME]",
        help="only these servers get the rules and tiers (a second database)",
    )
    parser.add_argument(
        "--client",
        choices=("wrk", "python"),
        default=accrual.DEFAULT_CLIENT,
        help="load generator (as in bench/accrual.py)",
    )
    return parser.parse_args()


def set_up(args: argparse.Namespace, dbname: str, url: str) -> tuple[str, dict[str, dict]]:
    """The database(s): migrations, members, the till key (and the rules where asked). The key
    and each server's environment, by name."""
    env = {**os.environ, **accrual.SERVER_ENV, "DATABASE_URL": url}
    accrual.run_cli(env, "db", "upgrade")
    accrual.load_members(url, args.members)
    if args.earning_rules:
        add_earning_rules(env, url)
    out = accrual.run_cli(env, "loyalty", "create-api-key", "bench-till", "--scope", "pos")
    key = out.strip().splitlines()[-1]
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id FROM api_clients WHERE name = 'bench-till'").fetchone()
        env["BARE_CLIENT_ID"] = str(row[0])
    envs = {spec.partition("=")[0]: env for spec in args.servers}
    ruled = {name for name in args.earning_rules_for.split(",") if name}
    if ruled:
        rules_env = {**env, "DATABASE_URL": copy_database(dbname, f"{dbname}_rules")}
        add_earning_rules(rules_env, rules_env["DATABASE_URL"])
        envs |= {name: rules_env for name in ruled}
    return key, envs


def start(args: argparse.Namespace, dbname: str, envs: dict[str, dict]) -> tuple[list, dict]:
    """Each server on a port of its own, listening: the processes and the ports by name."""
    servers: list[subprocess.Popen] = []
    ports: dict[str, int] = {}
    for spec in args.servers:
        name, _, rest = spec.partition("=")
        ports[name] = accrual.free_port()
        cmd, cwd = server_command(rest, ports[name])
        log = open(Path(tempfile.gettempdir()) / f"{dbname}_{name}.log", "w")  # noqa: SIM115
        servers.append(subprocess.Popen(cmd, cwd=cwd, env=envs[name], stdout=log, stderr=log))
        wait_until_listening(servers[-1], ports[name], log.name)
    return servers, ports


def rounds(args: argparse.Namespace, load: Any, key: str, ports: dict[str, int]) -> None:
    """The interleaved loads, and the medians per server."""
    results: dict[str, list[dict]] = {name: [] for name in ports}
    names = list(ports)
    for r in range(1, args.rounds + 1):
        # each round starts one server later, so no server always runs first or last
        k = (r - 1) % len(names)
        for name in names[k:] + names[:k]:
            res = load(ports[name], key, args.members, args.clients, args.seconds)
            results[name].append(res)
            print(
                f"round {r} {name}: {res['rps']:.0f} req/s, p50 {res['p50_ms']:.1f} ms, "
                f"p99 {res['p99_ms']:.1f} ms, {res['errors']} errors",
                flush=True,
            )
    for name, rows in results.items():
        print(
            f"median {name}: {statistics.median(x['rps'] for x in rows):.0f} req/s, "
            f"p99 {statistics.median(x['p99_ms'] for x in rows):.1f} ms"
        )


def main() -> None:
    args = arguments()
    load = accrual.load_wrk if args.client == "wrk" else accrual.load
    dbname, url = accrual.create_database()
    servers: list[subprocess.Popen] = []
    try:
        key, envs = set_up(args, dbname, url)
        servers, ports = start(args, dbname, envs)
        for port in ports.values():
            accrual.warm_up(load, port, key, args.members, args.clients)
        for database_url in {e["DATABASE_URL"] for e in envs.values()}:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("ANALYZE")
        rounds(args, load, key, ports)
        with psycopg.connect(url) as conn:
            for table, scans, rows_read in conn.execute(
                "SELECT relname, seq_scan, seq_tup_read FROM pg_stat_user_tables"
                " WHERE seq_tup_read > 0 ORDER BY seq_tup_read DESC LIMIT 5"
            ):
                print(f"sequential scans: {table} {scans} scans, {rows_read} rows read")
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        accrual.drop_database(dbname)
        accrual.drop_database(f"{dbname}_rules")  # IF EXISTS


def copy_database(source: str, name: str) -> str:
    """A copy of database `source` (nobody connected to it) as `name`; its URL."""
    with psycopg.connect(accrual.ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    return accrual.database_url(name)


if __name__ == "__main__":
    main()
