"""The real stack for the fault and soak benches: a private PostgreSQL cluster, gunicorn, the job
worker, and an HTTP client that retries with the same Idempotency-Key until it gets an answer.

Everything listens on loopback only and lives in one temporary folder, removed at the end. The
PostgreSQL cluster is a throw-away one (initdb on a free port; as the `postgres` OS user when run
as root), never the machine's shared server: the crash bench restarts it with `-m immediate`.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.accrual import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_VERSIONS = ("17", "16", "15", "14")

#: one API key stands for many tills: its rate limits are raised out of the way
SERVER_ENV = {
    "LOYALTY_RATE_LIMIT_PER_KEY": "10000000/minute",
    "LOYALTY_RATE_LIMIT_PER_IP": "10000000/minute",
    "LOYALTY_RATE_LIMIT_LOOKUPS": "10000000/minute",
    "LOYALTY_LOG_LEVEL": "WARNING",
    # a campaign whose job was lost (its worker killed) is handed to a new job after this
    "LOYALTY_JOB_GRACE_SECONDS": "5",
    # campaigns in small batches: a kill lands in the middle of one more often
    "LOYALTY_CAMPAIGN_BATCH": "5",
}


def _pg_bin() -> Path:
    for version in PG_VERSIONS:
        path = Path(f"/usr/lib/postgresql/{version}/bin")
        if (path / "initdb").exists():
            return path
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise SystemExit("initdb not found: install PostgreSQL's server binaries")


class PrivatePostgres:
    """A throw-away PostgreSQL cluster in `directory` on a free loopback port (trust auth)."""

    def __init__(self, directory: Path) -> None:
        self.bin = _pg_bin()
        self.data = directory / "pgdata"
        self.log = directory / "postgres.log"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        self.restarts = 0

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> None:
        cmd = list(args)
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=check, capture_output=True, timeout=timeout)

    def _own(self, path: Path) -> None:
        if self.as_postgres:
            shutil.chown(path, "postgres", "postgres")

    def start(self) -> None:
        self._own(self.data.parent)
        self.log.touch()
        self._own(self.log)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-instructions",
            "-E",
            "UTF8",
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.data}'\nmax_connections = 200\n"
                "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n"
            )
        self._pg_ctl("start")

    def _pg_ctl(self, action: str, *extra: str) -> None:
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "120",
            action,
            *extra,
        )

    def crash_restart(self, down_seconds: float = 0.0) -> None:
        """`pg_ctl stop -m immediate` (no checkpoint: crash recovery at the next start), then
        start again, waiting until it accepts connections."""
        self._pg_ctl("stop", "-m", "immediate")
        if down_seconds:
            time.sleep(down_seconds)
        self._pg_ctl("start")
        self.restarts += 1

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "fast")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if int(parent) == pid and state != "Z":  # a killed one not reaped yet is a zombie
            found.append(int(entry.name))
    return found


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Stack:
    """gunicorn (`workers` processes) and the job worker on one database, in `directory`."""

    directory: Path
    database_url: str
    workers: int = 3
    redis_url: str | None = None
    port: int = field(default_factory=free_port)
    server: subprocess.Popen | None = None
    job_worker: subprocess.Popen | None = None
    workers_killed: int = 0
    killed: set[int] = field(default_factory=set)
    job_worker_kills: int = 0
    env: dict[str, str] = field(default_factory=dict)
    logs: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env = {
            **os.environ,
            **SERVER_ENV,
            "DATABASE_URL": self.database_url,
            "LOYALTY_JOBS_FILE": str(self.directory / "jobs.sqlite3"),
            "LOYALTY_JOBS_NAME": f"loyalty-bench-{self.port}",
            # the app servers and the job worker add up their counters in one folder
            "PROMETHEUS_MULTIPROC_DIR": str(self.directory / "prometheus"),
            "SECRET_KEY": secrets.token_urlsafe(32),
        }
        self.env.pop("LOYALTY_REDIS_URL", None)
        if self.redis_url:  # the queue and the rate limits there, under names of this run's own
            self.env["LOYALTY_REDIS_URL"] = self.redis_url
            self.env["LOYALTY_RATE_LIMIT_PREFIX"] = f"loyalty-bench-limits-{self.port}"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"flask {' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
            )
        return proc

    def create_key(self, name: str, scope: str) -> tuple[str, int]:
        key = self.cli("loyalty", "create-api-key", name, "--scope", scope).stdout
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT id FROM api_clients WHERE name = %s", (name,)).fetchone()
        return key.strip().splitlines()[-1], int(row[0])

    def start(self, wait: bool = True) -> None:
        """gunicorn and the job worker; `wait`: until every app worker is up and ready."""
        log = self._log("gunicorn.log")
        self.server = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "--workers",
                str(self.workers),
                "--bind",
                f"127.0.0.1:{self.port}",
                "wsgi:app",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.start_job_worker()
        if wait:
            self.wait_ready()

    def _log(self, name: str) -> Any:
        log = open(self.directory / name, "a")  # noqa: SIM115  (closed by stop())
        self.logs.append(log)
        return log

    def start_job_worker(self) -> None:
        log = self._log("worker.log")
        self.job_worker = subprocess.Popen(
            [str(BIN / "flask"), "--app", "wsgi", "loyalty", "worker"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server is not None and self.server.poll() is not None:
                raise RuntimeError("gunicorn exited; see " + str(self.directory / "gunicorn.log"))
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=3) as r:
                    if r.status == 200 and len(self.app_workers()) >= self.workers:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn not ready; see " + str(self.directory / "gunicorn.log"))

    def app_workers(self) -> list[int]:
        return _children(self.server.pid) if self.server is not None else []

    def kill_app_worker(self, rng: random.Random) -> int | None:
        """kill -9 one gunicorn worker at random (the master starts another); none while one
        is missing still (so some of the service stays up: a real outage is the database's)."""
        pids = [p for p in self.app_workers() if p not in self.killed]
        if len(pids) < self.workers:
            return None
        pid = rng.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        self.killed.add(pid)  # until the kernel has it gone (a busy disk can take a moment)
        self.workers_killed += 1
        return pid

    def kill_job_worker(self) -> None:
        """kill -9 the job worker (its threads are in the one process) and start another."""
        if self.job_worker is not None and self.job_worker.poll() is None:
            self.job_worker.kill()
            self.job_worker.wait(timeout=30)
            self.job_worker_kills += 1
        self.start_job_worker()

    def ensure_job_worker(self) -> None:
        if self.job_worker is None or self.job_worker.poll() is not None:
            self.start_job_worker()

    def run_job_now(self, name: str) -> None:
        """A periodic job once, now (as its minute would): `name` from loyalty/jobs/tasks.py."""
        code = (
            "import sys; from wsgi import app; from loyalty.jobs import jobs_of\n"
            "with app.app_context(): jobs_of(app).run_here(sys.argv[1])"
        )
        subprocess.run(
            [sys.executable, "-c", code, name],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            check=True,
            timeout=120,
        )

    def stop(self) -> None:
        for proc, sig in ((self.job_worker, signal.SIGINT), (self.server, signal.SIGTERM)):
            if proc is not None and proc.poll() is None:
                proc.send_signal(sig)
        for proc in (self.job_worker, self.server):
            if proc is None:
                continue
            try:
                proc.wait(timeout=70)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for log in self.logs:
            log.close()
        self.logs.clear()
        if self.redis_url:
            self._forget_redis()

    def _forget_redis(self) -> None:
        """Remove this run's keys (the queue's and the rate limiter's) from the shared Redis."""
        import redis

        r = redis.Redis.from_url(self.redis_url or "")
        for name in ("LOYALTY_JOBS_NAME", "LOYALTY_RATE_LIMIT_PREFIX"):
            for key in r.scan_iter(match=f"*{self.env[name]}*", count=1000):
                r.delete(key)


# --- the client --------------------------------------------------------------------------------
#: answers that are not final: the client sends the same request again, same Idempotency-Key
RETRY_STATUSES = frozenset({0, 429, 500, 502, 503, 504})


@dataclass
class Answer:
    status: int
    body: Any
    attempts: int
    replayed: bool
    seconds: float


class Client:
    """One keep-alive connection; `call` retries (same request, same Idempotency-Key) on a
    connection error, a 5xx, a 429 or `idempotency_key_in_flight`, until an answer or
    `give_up_after` seconds."""

    def __init__(self, port: int, key: str, give_up_after: float = 180.0) -> None:
        self.port = port
        self.key = key
        self.give_up_after = give_up_after
        self.conn: http.client.HTTPConnection | None = None
        self.requests = 0
        self.failed_attempts = 0

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        self.requests += 1
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
            replayed = resp.getheader("Idempotent-Replayed") == "true"
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
        except (OSError, http.client.HTTPException):
            self.close()
            return 0, None, False
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode(errors="replace")
        return resp.status, data, replayed

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def call(
        self, method: str, path: str, payload: Any = None, idempotency_key: str | None = None
    ) -> Answer:
        headers = {"Authorization": f"Bearer {self.key}"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        started = time.monotonic()
        attempts, delay = 0, 0.05
        while True:
            attempts += 1
            status, data, replayed = self._send(method, "/api/v1" + path, body, headers)
            in_flight = (
                status == 409
                and isinstance(data, dict)
                and data.get("code") == "idempotency_key_in_flight"
            )
            if status not in RETRY_STATUSES and not in_flight:
                return Answer(status, data, attempts, replayed, time.monotonic() - started)
            self.failed_attempts += 1
            if time.monotonic() - started > self.give_up_after:
                return Answer(status, data, attempts, replayed, time.monotonic() - started)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)


def make_workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
