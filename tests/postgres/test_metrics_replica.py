"""The metrics read from a real streaming replica (LOYALTY_READ_DATABASE_URL).

A second PostgreSQL cluster is made for the module with `pg_basebackup -R` from the test
database's cluster (LOYALTY_TEST_PG) and started on a free port with `pg_ctl`, as the `postgres`
OS user when the tests run as root; it is stopped and removed afterwards. The primary must let
127.0.0.1 connect for replication: where its pg_hba.conf has no such rule and is writable here, a
`host replication all 127.0.0.1/32 trust` line is added and the configuration reloaded (no
restart). Without the PostgreSQL binaries, the tests are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from loyalty import readdb
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.postgres

PERIOD = "start=2026-03-01&end=2026-03-31"
#: the lag an up-to-date replica may show while other databases of the cluster write (seconds)
LAG_TOLERANCE = 6  # up to date: 0, or a moment's replay behind the primary's other databases


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    """A command run as the `postgres` OS user when we are root (PostgreSQL refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def _allow_replication(admin: psycopg.Connection) -> None:
    """A pg_hba rule letting 127.0.0.1 connect for replication, added if missing."""
    rules = admin.execute(
        "SELECT count(*) FROM pg_hba_file_rules WHERE 'replication' = ANY(database) "
        "AND (address IS NULL OR address = '127.0.0.1' OR address = 'all') AND error IS NULL"
    ).fetchone()
    if rules and rules[0]:
        return
    hba = Path(admin.execute("SHOW hba_file").fetchone()[0])  # type: ignore[index]
    if not os.access(hba, os.W_OK):
        pytest.skip(f"{hba} has no replication rule for 127.0.0.1 and is not writable here")
    print(f"adding a replication rule for 127.0.0.1 to {hba}", file=sys.stderr)
    with hba.open("a") as f:
        f.write("\n# metrics replica tests (tests/postgres/test_metrics_replica.py)\n")
        f.write("host replication all 127.0.0.1/32 trust\n")
    admin.execute("SELECT pg_reload_conf()")


@pytest.fixture(scope="module")
def replica_port(app) -> Iterator[int]:
    """A streaming replica of the test cluster, on a free port, for the module."""
    tools = {name: _bin(name) for name in ("pg_basebackup", "pg_ctl")}
    if None in tools.values():
        pytest.skip(f"PostgreSQL binaries missing: {[n for n, p in tools.items() if not p]}")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        _allow_replication(admin)
    root = Path(tempfile.mkdtemp(prefix="loyalty-replica-"))
    data, port = root / "data", _free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o700)
    primary = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_URL)
    subprocess.run(
        _as_postgres(
            [
                str(tools["pg_basebackup"]),
                "-h", str(primary.get("host", "127.0.0.1")),
                "-p", str(primary.get("port", 5432)),
                "-U", str(primary.get("user", "postgres")),
                "-D", str(data), "-R", "-X", "stream", "-c", "fast",
            ]
        ),
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (data / "postgresql.conf").write_text(
        f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
        "hot_standby = on\nhot_standby_feedback = on\nmax_standby_streaming_delay = 5s\n"
        "shared_buffers = 32MB\nlogging_collector = off\n"
    )
    (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    if os.geteuid() == 0:
        for path in (data / "postgresql.conf", data / "pg_hba.conf"):
            shutil.chown(path, "postgres", "postgres")
    ctl = [str(tools["pg_ctl"]), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "30"]
    subprocess.run(_as_postgres([*ctl, "start"]), check=True, capture_output=True, timeout=60)
    try:
        yield port
    finally:
        subprocess.run(
            _as_postgres([*ctl, "-m", "immediate", "stop"]), capture_output=True, timeout=60
        )
        shutil.rmtree(root, ignore_errors=True)


def _stop(port: int) -> Path:
    for candidate in Path(tempfile.gettempdir()).glob("loyalty-replica-*/data"):
        if f"port = {port}" in (candidate / "postgresql.conf").read_text():
            ctl = [str(_bin("pg_ctl")), "-D", str(candidate), "-m", "fast", "-w"]
            subprocess.run(_as_postgres([*ctl, "stop"]), check=True, capture_output=True)
            return candidate
    raise AssertionError(f"no replica on port {port}")


def _replica_url(database_url: str, port: int) -> str:
    info = psycopg.conninfo.conninfo_to_dict(database_url.replace("+psycopg", ""))
    return f"postgresql+psycopg://{info.get('user', 'postgres')}@127.0.0.1:{port}/{info['dbname']}"


def _caught_up(port: int, dbname: str, timeout: float = 20) -> None:
    """Waits until the replica has replayed everything the primary has written so far."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as primary:
        target = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
    deadline = time.monotonic() + timeout
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname,
                         autocommit=True) as replica:  # fmt: skip
        while time.monotonic() < deadline:
            done = replica.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(target),)
            ).fetchone()
            if done and done[0]:
                return
            time.sleep(0.1)
    raise AssertionError("the replica did not catch up")


def _buy(client, pos, member_id: int, n: int, day: str = "2026-03-10") -> None:
    for i in range(n):
        body = {
            "external_id": f"r-{member_id}-{day}-{i}-{time.monotonic_ns()}",
            "member_id": member_id,
            "amount": 1000,
            "currency": "EUR",
            "occurred_at": f"{day}T12:00:00+00:00",
        }
        assert client.post("/api/v1/purchases", json=body, headers=pos).status_code == 201


def _cut_off(port: int, dbname: str) -> None:
    """The replica's WAL receiver pointed at nothing: it stops streaming from the primary."""
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname,
                         autocommit=True) as replica:  # fmt: skip
        replica.execute("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=1'")
        replica.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 30
        while replica.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')"
        ).fetchone() != (False,):
            assert time.monotonic() < deadline, "the WAL receiver kept streaming"
            time.sleep(0.1)


def test_metrics_read_from_the_replica_say_how_far_behind_and_survive_it_going_down(
    app, client, make_app, pos, api_key, database_url, replica_port
) -> None:
    dbname = psycopg.conninfo.conninfo_to_dict(database_url.replace("+psycopg", ""))["dbname"]
    reports = api_key("reports")
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    _buy(client, pos, member["id"], 2)
    url = _replica_url(database_url, replica_port)
    replicated = make_app(LOYALTY_READ_DATABASE_URL=url).test_client()
    _caught_up(replica_port, str(dbname))

    # up to date: the replica's figures are the primary's, and it says so
    r = replicated.get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports)
    assert r.status_code == 200, r.json
    assert (r.json["read_from"], r.json["purchases"]) == ("replica", 2)
    # our writes are replayed; the lag may still be a little over 0 while the primary's other
    # databases stream more WAL
    assert 0 <= r.json["replica_lag_seconds"] < LAG_TOLERANCE
    primary = client.get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports).json
    assert (primary["read_from"], primary["replica_lag_seconds"]) == ("primary", None)
    for path in ("cohorts?start=2026-01-01&end=2026-03-31", "segments?as_of=2026-03-31"):
        r = replicated.get(f"/api/v1/metrics/{path}", headers=reports)
        assert r.status_code == 200 and r.json["read_from"] == "replica", r.json

    # a few seconds behind: replay paused, the primary goes on
    with psycopg.connect(host="127.0.0.1", port=replica_port, user="postgres", dbname=dbname,
                         autocommit=True) as replica:  # fmt: skip
        replica.execute("SELECT pg_wal_replay_pause()")
        while replica.execute("SELECT pg_get_wal_replay_pause_state()").fetchone() != ("paused",):
            time.sleep(0.05)
        try:
            _buy(client, pos, member["id"], 1)
            time.sleep(3)
            _buy(client, pos, member["id"], 1)  # more WAL, received but not replayed
            time.sleep(0.5)
            r = replicated.get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports)
            assert r.status_code == 200, r.json
            assert r.json["purchases"] == 2  # what the replica has: the new ones not yet
            assert r.json["replica_lag_seconds"] >= 3, r.json
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")
    _caught_up(replica_port, str(dbname))
    r = replicated.get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports)
    assert r.json["purchases"] == 4 and r.json["replica_lag_seconds"] < LAG_TOLERANCE, r.json

    # cut off from the primary (its WAL receiver cannot connect): the figures it still has, and
    # how old they are (it replayed all it received, which does not make it up to date)
    _cut_off(replica_port, str(dbname))
    _buy(client, pos, member["id"], 1)  # on the primary only
    time.sleep(3)
    r = replicated.get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports)
    assert r.status_code == 200, r.json
    assert r.json["purchases"] == 4 and r.json["replica_lag_seconds"] >= 3, r.json

    # down: 503 with its code, or the primary when falling back is configured
    _stop(replica_port)
    r = replicated.get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports)
    assert r.status_code == 503, r.json
    assert r.json["code"] == "replica_unavailable"
    assert r.headers["Content-Type"].startswith("application/problem+json")
    fallback = make_app(LOYALTY_READ_DATABASE_URL=url, LOYALTY_READ_FALLBACK=True).test_client()
    r = fallback.get("/api/v1/metrics/segments?as_of=2026-03-31", headers=reports)
    assert r.status_code == 200, r.json
    assert (r.json["read_from"], r.json["replica_lag_seconds"]) == ("primary", None)


def test_a_hung_read_database_gives_a_503_in_bounded_time_not_a_500(
    app, client, make_app, api_key, database_url
) -> None:
    """Every wait on the read database is bounded: a statement that cannot finish (here: a table
    it reads locked by another transaction, as a replica stuck on replay would) is cancelled by
    LOYALTY_READ_STATEMENT_TIMEOUT_MS and answered 503 replica_unavailable; with the fallback the
    primary answers instead. The test points LOYALTY_READ_DATABASE_URL at the test database
    itself: the bounds are the read engine's, whatever it is connected to."""
    reports = api_key("reports")
    hung = make_app(LOYALTY_READ_DATABASE_URL=database_url, LOYALTY_READ_STATEMENT_TIMEOUT_MS=300)
    with hung.app_context(), readdb.reading() as source:
        assert source.session.execute(text("SHOW statement_timeout")).scalar() == "300ms"
        params = source.session.connection().connection.driver_connection.info.get_parameters()
        assert params["keepalives"] == "1" and params["tcp_user_timeout"] == "10000", params
    fallback_app = make_app(
        LOYALTY_READ_DATABASE_URL=database_url,
        LOYALTY_READ_STATEMENT_TIMEOUT_MS=300,
        LOYALTY_READ_FALLBACK=True,
    )
    lock = psycopg.connect(database_url.replace("+psycopg", ""))
    try:
        lock.execute("LOCK TABLE purchase_links IN ACCESS EXCLUSIVE MODE")
        began = time.monotonic()
        unbounded = threading.Timer(3, lock.rollback)  # without the bound: a 200 after 3 s
        unbounded.start()
        r = hung.test_client().get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports)
        unbounded.cancel()
        assert (r.status_code, r.json["code"]) == (503, "replica_unavailable"), r.json
        assert time.monotonic() - began < 2
        fallback = fallback_app.test_client()
        release = threading.Timer(1.5, lock.rollback)  # the primary's read waits for it
        release.start()
        r = fallback.get(f"/api/v1/metrics/retention?{PERIOD}", headers=reports)
        release.join()
        assert r.status_code == 200, r.json
        assert (r.json["read_from"], r.json["purchases"]) == ("primary", 0)
    finally:
        lock.close()
