"""Fixtures for the background jobs: the app's queue on real storage, in both modes.

`queue` is parametrised: `sqlite` (the embedded default: a SQLite file) and `redis` (the Redis on
127.0.0.1:6379, or LOYALTY_TEST_REDIS, under a key prefix unique to the test, deleted after).
Jobs are run the way Huey's own tests run them: dequeued from the storage and executed here
(`Queue.drain`), or by a real worker process (`worker`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import stripe
from flask import Flask
from sqlalchemy import update

from loyalty import jobs as loyalty_jobs
from loyalty.extensions import db
from loyalty.jobs.queue import EXTENSION, Jobs
from loyalty.models import Campaign, Voucher
from loyalty.models.types import utcnow
from tests import stripe_server

REDIS_URL = os.environ.get("LOYALTY_TEST_REDIS", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]


def _redis_answers() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


class Queue:
    """The app's queue for one test, and ways to run what is in it."""

    def __init__(self, jobs: Jobs, mode: str, settings: dict[str, Any]) -> None:
        self.jobs = jobs
        self.huey = jobs.huey
        self.mode = mode
        self.settings = settings  # what a worker process needs to read the same queue

    def names(self) -> list[str]:
        """The jobs waiting, in order (scheduled retries not included)."""
        return [task.name for task in self.huey.pending()]

    def drain(self, limit: int = 200) -> list[str]:
        """Run every queued job, and every scheduled retry without waiting for its delay, until
        none is left; the names of the jobs run, in order."""
        ran: list[str] = []
        later = utcnow().replace(tzinfo=None) + timedelta(days=1)
        for _ in range(limit):
            for task in self.huey.read_schedule(later):
                self.huey.enqueue(task)
            # (a blocking dequeue of an empty Redis queue would wait for its read timeout)
            task = self.huey.dequeue() if self.huey.pending_count() else None
            if task is None:
                return ran
            self.huey.execute(task, later)
            ran.append(task.name)
        raise AssertionError(f"more than {limit} jobs: {ran[-10:]}")

    def run_periodic(self, name: str) -> list[str]:
        """Enqueue the periodic job `name` (as the worker's scheduler does) and drain."""
        self.jobs.enqueue(name)
        return self.drain()


@pytest.fixture(params=["sqlite", "redis"])
def queue(request: pytest.FixtureRequest, app: Flask, tmp_path: Path) -> Iterator[Queue]:
    """The app's jobs on a real queue (this test's own), for the duration of the test."""
    name = f"loyalty_test_{uuid.uuid4().hex[:12]}"
    settings: dict[str, Any] = {
        "LOYALTY_JOBS_IMMEDIATE": False,
        "LOYALTY_JOBS_NAME": name,
        "LOYALTY_REDIS_URL": None,
        "LOYALTY_JOBS_FILE": str(tmp_path / "jobs.sqlite3"),
        "LOYALTY_JOB_RETRIES": 2,
        "LOYALTY_JOB_RETRY_DELAY_SECONDS": 1,
        "LOYALTY_JOB_GRACE_SECONDS": 60,
        "LOYALTY_CAMPAIGN_BATCH": 3,
    }
    if request.param == "redis":
        if not _redis_answers():
            if os.environ.get("CI") == "true":
                pytest.fail(f"Redis does not answer at {REDIS_URL}; CI must not skip it")
            pytest.skip(f"Redis does not answer at {REDIS_URL}")
        settings["LOYALTY_REDIS_URL"] = REDIS_URL
    saved = {key: app.config.get(key) for key in settings}
    previous = app.extensions[EXTENSION]
    app.config.update(settings)
    jobs = loyalty_jobs.init_app(app)
    try:
        yield Queue(jobs, request.param, settings)
    finally:
        jobs.huey.flush()
        if request.param == "redis":
            conn = redis.Redis.from_url(REDIS_URL)
            for key in conn.scan_iter(f"huey.*{name}*"):
                conn.delete(key)
        app.extensions[EXTENSION] = previous
        app.config.update(saved)


@pytest.fixture
def stripe_on(app: Flask, localstripe_url: str) -> Iterator[stripe.StripeClient]:
    """Stripe configured, against localstripe (emptied); a client to look at its coupons."""
    stripe_server.clear(localstripe_url)
    settings = {
        "STRIPE_API_KEY": "sk_test_loyalty",
        "STRIPE_API_BASE": localstripe_url,
        "STRIPE_TIMEOUT_SECONDS": 5.0,
        "STRIPE_MAX_NETWORK_RETRIES": 1,
    }
    saved = {key: app.config.get(key) for key in settings}
    app.config.update(settings)
    yield stripe.StripeClient(
        "sk_test_loyalty", base_addresses={"api": localstripe_url}, max_network_retries=0
    )
    app.config.update(saved)


@pytest.fixture
def silent_server() -> Iterator[tuple[str, list[int]]]:
    """A server on loopback that accepts connections and never answers: (its URL, a list with
    the count of connections it accepted)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    accepted = [0]
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted[0] += 1
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def age(app: Flask) -> Callable[..., None]:
    """`age(Voucher, seconds)` / `age(Campaign, seconds)`: as if every row's last change (the
    Stripe mirror's, a campaign's batch) was that long ago."""

    def make(model: Any, seconds: int) -> None:
        column = {Voucher: "stripe_updated_at", Campaign: "updated_at"}[model]
        with app.app_context():
            db.session.execute(
                update(model).values({column: utcnow() - timedelta(seconds=seconds)})
            )
            db.session.commit()

    return make


@pytest.fixture
def worker(
    queue: Queue, database_url: str, tmp_path: Path
) -> Iterator[Callable[[dict[str, str]], subprocess.Popen[bytes]]]:
    """`worker(env)` starts `flask --app wsgi loyalty worker` on this test's queue and database
    (stopped with SIGINT at the end at the latest)."""
    started: list[subprocess.Popen[bytes]] = []
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 (closed below)

    def start(extra: dict[str, str]) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALTY_", "STRIPE_"))}
        env.update({k: str(v) for k, v in queue.settings.items() if v not in (None, False)})
        env.update(DATABASE_URL=database_url, **extra)
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "loyalty", "worker", "--threads", "2"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    log.close()


def wait_for(check: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


@pytest.fixture
def eventually() -> Callable[..., bool]:
    """`eventually(check, seconds)`: poll until check() is true (or the time is up)."""
    return wait_for
