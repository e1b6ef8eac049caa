"""The app's job queue: one Huey per app, configured from the app's config.

    LOYALTY_REDIS_URL set    → Redis (a priority queue; keys named after LOYALTY_JOBS_NAME)
    otherwise                → a SQLite file, LOYALTY_JOBS_FILE (instance/jobs.sqlite3, 0600)
    LOYALTY_JOBS_IMMEDIATE=1 → no queue: a job runs at once where it is enqueued (tests)

Each task runs in an app context of the app that registered it, with a database session of its
own; the task owns its transactions. What a transaction asks for (the Stripe mirror of the
vouchers it marked, a campaign it created) is enqueued only after it commits
(`enqueue_after_commit`); the rows are marked in the database first, so a lost enqueue is found
again by the periodic sweeps.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis
from flask import Flask, current_app, has_app_context
from huey import Huey, PriorityRedisHuey, SqliteHuey
from huey.consumer import Consumer
from sqlalchemy import event
from sqlalchemy.orm import Session

from loyalty.domain import campaigns, vouchers
from loyalty.extensions import db, write_transaction
from loyalty.integrations import stripe as stripe_integration

log = logging.getLogger(__name__)

EXTENSION = "loyalty_jobs"

#: task names (stable: they are what a queued job refers to)
STRIPE_MIRROR = "stripe_mirror"
RUN_CAMPAIGN = "run_campaign"

REDIS_SOCKET_TIMEOUT_SECONDS = 5.0


def _private_file(path: str) -> str:
    """Create the SQLite queue file readable by its owner only (0600), if it is not there."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    return path


def make_huey(config: Mapping[str, Any]) -> Huey:
    """The Huey of these settings (see the module's docstring). Results are not kept."""
    name = config["LOYALTY_JOBS_NAME"]
    if config["LOYALTY_JOBS_IMMEDIATE"]:
        return Huey(name, results=False, immediate=True)
    if config["LOYALTY_REDIS_URL"]:
        pool = redis.ConnectionPool.from_url(
            config["LOYALTY_REDIS_URL"],
            socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
            health_check_interval=30,
        )
        return PriorityRedisHuey(name, results=False, connection_pool=pool)
    return SqliteHuey(name, results=False, filename=_private_file(config["LOYALTY_JOBS_FILE"]))


class Jobs:
    """The app's queue: its Huey and the tasks registered on it, by name."""

    def __init__(self, app: Flask, huey: Huey) -> None:
        self.app = app
        self.huey = huey
        self.tasks: dict[str, Any] = {}

    def task(self, name: str, body: Callable[..., Any], *, priority: int = 0) -> None:
        """Register a job: retried LOYALTY_JOB_RETRIES times on an exception, after
        LOYALTY_JOB_RETRY_DELAY_SECONDS, doubling."""
        config = self.app.config
        self.tasks[name] = self.huey.task(
            name=name,
            priority=priority,
            retries=config["LOYALTY_JOB_RETRIES"],
            retry_delay=config["LOYALTY_JOB_RETRY_DELAY_SECONDS"],
            retry_backoff=2,
        )(self._in_app(name, body))

    def periodic(self, name: str, schedule: Any, body: Callable[..., Any]) -> None:
        """Register a job the worker runs on `schedule` (a huey crontab, UTC); not retried: it
        runs again at its next time."""
        self.tasks[name] = self.huey.periodic_task(schedule, name=name, priority=5)(
            self._in_app(name, body)
        )

    def enqueue(self, name: str, *args: Any) -> None:
        self.tasks[name](*args)

    def run_here(self, name: str, *args: Any) -> Any:
        """Run a job now, in this process, as the worker would (the CLI's way to run it once)."""
        return self.tasks[name].call_local(*args)

    def consumer(self, threads: int) -> Consumer:
        """The worker: `threads` threads, periodic jobs on, SIGINT waits for running jobs."""
        return self.huey.create_consumer(
            workers=threads, worker_type="thread", periodic=True, shutdown_timeout=60
        )

    def _in_app(self, name: str, body: Callable[..., Any]) -> Callable[..., Any]:
        app = self.app

        def run(*args: Any) -> Any:
            with app.app_context():
                token = write_transaction.set(True)  # SQLite: a job's transactions write
                try:
                    return body(*args)
                finally:
                    write_transaction.reset(token)

        run.__name__ = run.__qualname__ = name
        run.__doc__ = body.__doc__
        return run


def jobs_of(app: Flask) -> Jobs:
    jobs: Jobs = app.extensions[EXTENSION]
    return jobs


def enqueue_mirror(voucher_ids: list[int]) -> None:
    """Stripe mirror jobs for these vouchers, MIRROR_BATCH (100) a job."""
    jobs = jobs_of(current_app)
    ids = sorted(voucher_ids)
    step = stripe_integration.MIRROR_BATCH
    for i in range(0, len(ids), step):
        jobs.enqueue(STRIPE_MIRROR, ids[i : i + step])


def enqueue_after_commit(session: Session) -> None:
    """The jobs the transaction that just committed asked for: the Stripe mirror of the vouchers
    it marked, the campaigns it created. A failed enqueue is logged, never raised: the rows are
    marked in the database, and the sweeps enqueue them again."""
    voucher_ids = session.info.pop(vouchers.MIRROR_AFTER_COMMIT, None)
    campaign_ids = session.info.pop(campaigns.CAMPAIGNS_AFTER_COMMIT, None)
    try:
        if voucher_ids:
            enqueue_mirror(list(voucher_ids))
        for campaign_id in sorted(campaign_ids or ()):
            jobs_of(current_app).enqueue(RUN_CAMPAIGN, campaign_id)
    except Exception:
        log.exception("enqueueing jobs failed; the periodic sweep enqueues them again")


def discard_after_rollback(session: Session) -> None:
    """A rolled-back transaction asked for nothing: forget the jobs it noted."""
    session.info.pop(vouchers.MIRROR_AFTER_COMMIT, None)
    session.info.pop(campaigns.CAMPAIGNS_AFTER_COMMIT, None)


def _note_stripe_mirroring(session: Session, _transaction: Any, _connection: Any) -> None:
    """As a transaction begins: do the vouchers it changes get a Stripe coupon (is Stripe on)?"""
    if has_app_context():
        session.info[vouchers.MIRROR_ON] = bool(current_app.config.get("STRIPE_API_KEY"))


def listen_for_stripe_mirroring() -> None:
    if not event.contains(db.session, "after_begin", _note_stripe_mirroring):
        event.listen(db.session, "after_begin", _note_stripe_mirroring)
