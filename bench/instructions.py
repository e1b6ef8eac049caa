"""Instructions per purchase, counted by valgrind (callgrind): the same figure under any load.

    .venv/bin/python bench/instructions.py [--purchases 100] [--earning-rules] [--bare]
        [--config '{"RATELIMIT_ENABLED": false}'] [--log-level INFO] [--dir /tmp/wt/base]

Requests per second and CPU time move with whatever else the machine runs (these machines have
two cores and are shared); the number of instructions the app server's Python executes for one
purchase does not: two runs of the same code agree to 0.1 %, with other benchmarks beside them.
So a change to the purchase path is measured here first, and confirmed by `bench/ab.py` on a
quiet machine.

The set-up (bench/accrual.py's: a throw-away PostgreSQL database, its migrations, members with
cards, a till key; `--earning-rules`: bench/ab.py's five rules and tier table) runs natively.
Then a child process runs under `valgrind --tool=callgrind --instr-atstart=no`: it makes the
app as gunicorn's workers have it (the service's JSON logging at `--log-level`, Prometheus in
multiprocess mode, rate limits raised as in every benchmark), posts purchases through Flask's
test client to warm up, switches counting on (`callgrind_control -i on`), posts `--purchases`
more, and switches it off. Printed: user-space instructions per purchase (the database server's
work and the kernel's are not in it; the test client's own share is). `--bare`:
bench/bare_app.py instead, the same SQL through SQLAlchemy Core. `--dir`: the app of another
checkout (a git worktree), for a side-by-side. Needs valgrind (Debian's package).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging.config
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import ab, accrual

MEMBERS = 200
WARM_UP = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purchases", type=int, default=100)
    parser.add_argument("--earning-rules", action="store_true")
    parser.add_argument("--bare", action="store_true", help="bench/bare_app.py instead")
    parser.add_argument("--config", default="{}", help="settings to override, as JSON")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--dir", default=str(accrual.ROOT), help="the checkout whose app runs")
    parser.add_argument("--child", nargs=2, metavar=("URL", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        count(args, *args.child)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    dbname, url = accrual.create_database()
    out = Path(tempfile.mkdtemp(prefix="loyalty_instructions_"))
    try:
        env = {**os.environ, **accrual.SERVER_ENV, "DATABASE_URL": url}
        accrual.run_cli(env, "db", "upgrade")
        accrual.load_members(url, MEMBERS)
        key = accrual.run_cli(env, "loyalty", "create-api-key", "ins-till", "--scope", "pos")
        key = key.strip().splitlines()[-1]
        if args.earning_rules:
            ab.add_earning_rules(env, url)
        env["BARE_CLIENT_ID"] = client_id(url)
        child = [a for a in sys.argv[1:] if a != "--earning-rules"]
        subprocess.run(
            [
                *("valgrind", "--tool=callgrind", "--instr-atstart=no"),
                f"--callgrind-out-file={out}/cg.%p",
                sys.executable,
                str(Path(__file__).resolve()),
                *child,
                *("--child", url, key),
            ],
            cwd=args.dir,
            env=env,
            check=True,
            stderr=subprocess.DEVNULL,
        )
        total = sum(totals(path) for path in glob.glob(str(out / "cg.*")))
        what = "bare endpoint" if args.bare else args.dir
        rules = ", earning rules and tiers" if args.earning_rules else ""
        print(f"{what}{rules}: {total / args.purchases:,.0f} instructions per purchase")
    finally:
        shutil.rmtree(out, ignore_errors=True)
        accrual.drop_database(dbname)


def client_id(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id FROM api_clients WHERE name = 'ins-till'").fetchone()
    return str(row[0])


def totals(path: str) -> int:
    """The instructions a callgrind output file counted: its `totals:` line (the `summary:`
    line of a file written with counting switched off at the start says 0)."""
    for line in reversed(Path(path).read_text().splitlines()):
        if line.startswith("totals:"):
            return int(line.split()[1])
    return 0


def count(args: argparse.Namespace, url: str, key: str) -> None:
    """Under valgrind: the app as a gunicorn worker has it, purchases counted."""
    sys.path.insert(0, os.getcwd())  # --dir's own packages first
    os.environ.update({"DATABASE_URL": url})
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="loyalty_prom_")
    from loyalty.observability import logging_config

    logging.config.dictConfig(logging_config(args.log_level))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # the JSON lines are written, to nowhere
    if args.bare:
        from bench.bare_app import app
    else:
        from loyalty.app import create_app

        app = create_app(json.loads(args.config))
    client = app.test_client()

    def purchase(i: int) -> None:
        accrual.post_in_process(client, key, i % MEMBERS + 1, "ins")

    for i in range(WARM_UP):
        purchase(i)
    control = ["callgrind_control", "-i"]
    subprocess.run([*control, "on", str(os.getpid())], check=True, capture_output=True)
    for i in range(args.purchases):
        purchase(i)
    subprocess.run([*control, "off", str(os.getpid())], check=True, capture_output=True)
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
