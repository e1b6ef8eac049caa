"""The crash bench, short: kill -9 app workers and the job worker, restart PostgreSQL with
`-m immediate`, under load with clients that retry with their Idempotency-Key; nothing
acknowledged is lost, nothing is done twice (bench/crash.py, on a private throw-away cluster)."""

from __future__ import annotations

import shlex

import pytest

from bench import crash
from bench.stack import PG_VERSIONS, _pg_bin

pytestmark = pytest.mark.postgres


def _have_initdb() -> bool:
    try:
        _pg_bin()
    except SystemExit:
        return False
    return True


@pytest.mark.timeout(300)
@pytest.mark.skipif(not _have_initdb(), reason=f"no initdb (PostgreSQL {PG_VERSIONS} server)")
def test_under_kills_and_database_crashes_nothing_acknowledged_is_lost_or_done_twice() -> None:
    args = crash.parser().parse_args(
        shlex.split(
            "--seconds 15 --clients 6 --workers 3 --kill-every 3 --pg-restarts 2"
            " --job-worker-kills 1 --campaign-every 2 --sweep-now --job-timeout 60"
        )
    )
    result = crash.run(args)
    crash.report(result)
    assert result["problems"] == []
    assert result["lost"] == 0
    assert result["duplicated"] == 0
    assert result["stuck_reservations"] == 0
    assert result["verify_ledger"].startswith("OK")
    assert result["pg_restarts"] == 2
    assert result["app_workers_killed"] >= 1
    assert result["job_worker_kills"] == 1
    assert result["campaigns"] >= 1
    assert result["acknowledged"] > 10
    assert result["ok"]
