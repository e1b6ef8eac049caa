"""The jobs. Each runs in an app context (see `queue.Jobs`), owns its transactions, and is safe to
run twice or after a crash. Periodic ones (UTC):

    stripe_sweep        every minute   the Stripe mirror of what stayed pending, of vouchers
                                       now valid, of expired ones, of ones without a
                                       promotion code
    campaign_sweep      every minute   campaigns whose job was lost
    release_expired     every minute   reservations past their time give their points back
    prune_idempotency   hourly (:17)   Idempotency-Key records older than the TTL (≥ 24 h)
    recompute_tiers     daily (02:23)  every member's tier by the programme's tier policy
    expire_points       hourly (:05)   lapsed lots expire, pending points whose time is over
                                       become available (hourly: a day ends at midnight in
                                       the programme's time zone, whichever it is)
    metrics_rollup      every minute   the purchases since the last run into the metrics
                                       rollups (loyalty.domain.rollups), a batch a transaction
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from huey import crontab

from loyalty.domain import campaigns, idempotency, ledger, redemptions, rollups, tiers
from loyalty.domain.context import Actor
from loyalty.extensions import db
from loyalty.integrations import stripe as stripe_integration
from loyalty.jobs.queue import (
    RUN_CAMPAIGN,
    STRIPE_MIRROR,
    Jobs,
    enqueue_after_commit,
    enqueue_mirror,
    jobs_of,
)
from loyalty.models.types import utcnow

log = logging.getLogger(__name__)

#: batches of 500 reservations a periodic release_expired does at most (the next run goes on)
RELEASE_MAX_BATCHES = 20


class MirrorFailed(Exception):
    """Some coupon calls failed: the job is retried (a bounded number of times)."""


def _stripe() -> stripe_integration.StripeConfig:
    return stripe_integration.StripeConfig.from_mapping(current_app.config)


def mirror_vouchers(voucher_ids: list[int]) -> dict[str, int]:
    """The Stripe coupons and promotion codes of these vouchers brought in line with them (a
    voucher valid from a later time is `scheduled`). Raises MirrorFailed when a call failed: the
    voucher stays pending, Huey retries the job, and once its retries are spent the sweep hands
    it to a new job after LOYALTY_JOB_GRACE_SECONDS."""
    counts = stripe_integration.mirror(db.session(), _stripe(), voucher_ids)
    if counts["failed"]:
        failed, total = counts["failed"], len(voucher_ids)
        raise MirrorFailed(f"Stripe calls failed for {failed} of {total} vouchers")
    return counts


def stripe_sweep() -> int:
    """Mirror jobs for the vouchers pending for longer than the grace (their job was lost, or
    gave up), scheduled ones that are now valid, expired ones whose coupon is still there, and
    synced ones without a promotion code (see `stripe_integration.due`). Returns how many."""
    if not _stripe().enabled:
        return 0
    grace = current_app.config["LOYALTY_JOB_GRACE_SECONDS"]
    ids = stripe_integration.claim_due(db.session(), grace_seconds=grace)
    db.session.commit()
    enqueue_mirror(ids)
    return len(ids)


def stripe_sync() -> dict[str, int]:
    """The sweep once, synchronously, calling Stripe from here (`flask loyalty stripe-sync`)."""
    return stripe_integration.sync_all(db.session(), _stripe())


def run_campaign(campaign_id: int) -> str:
    """The campaign's batches (LOYALTY_CAMPAIGN_BATCH members each, each its own transaction)
    until it is done; the Stripe mirror of each batch's vouchers is enqueued after its commit.
    On an error the campaign keeps it and stays running, and the error is raised (Huey
    retries); after LOYALTY_CAMPAIGN_MAX_ATTEMPTS attempts the campaign is failed."""
    session, config = db.session(), current_app.config
    started = campaigns.start(
        session, campaign_id, max_attempts=config["LOYALTY_CAMPAIGN_MAX_ATTEMPTS"]
    )
    session.commit()
    if not started:
        return "nothing to run"
    done = False
    while not done:
        try:
            done = campaigns.run_batch(session, campaign_id, limit=config["LOYALTY_CAMPAIGN_BATCH"])
            session.commit()
        except Exception as exc:
            session.rollback()
            campaigns.record_error(session, campaign_id, repr(exc))
            session.commit()
            raise
        enqueue_after_commit(session)
    return "done"


def campaign_sweep() -> int:
    """Jobs again for the campaigns pending or running that no batch has touched for
    LOYALTY_JOB_GRACE_SECONDS (their enqueue was lost, or their worker died)."""
    grace = timedelta(seconds=current_app.config["LOYALTY_JOB_GRACE_SECONDS"])
    ids = campaigns.claim_stale(db.session(), untouched_since=utcnow() - grace)
    db.session.commit()
    jobs = jobs_of(current_app)
    for campaign_id in ids:
        jobs.enqueue(RUN_CAMPAIGN, campaign_id)
    return len(ids)


def release_expired(max_batches: int | None = RELEASE_MAX_BATCHES) -> int:
    """Expire the reservations past their time, a batch of members per transaction (the API
    also does this lazily, whenever a member is touched). Returns how many."""
    total, batches = 0, 0
    while max_batches is None or batches < max_batches:
        count = redemptions.release_expired(db.session())
        db.session.commit()
        total, batches = total + count, batches + 1
        if count == 0:
            break
    return total


def prune_idempotency() -> int:
    """Delete the Idempotency-Key records older than LOYALTY_IDEMPOTENCY_TTL_HOURS."""
    count = idempotency.prune(db.session(), current_app.config["LOYALTY_IDEMPOTENCY_TTL_HOURS"])
    db.session.commit()
    return count


def recompute_tiers(
    at: datetime | None = None, dry_run: bool = False, by: str = "recompute_tiers"
) -> list[tiers.Move]:
    """Every member's tier as of `at` (now by default), in one transaction (see
    `tiers.recompute`), recorded as changed by `by`; `dry_run` writes nothing. Returns the
    moves."""
    session = db.session()
    actor = Actor(client_id=None, name=by, admin=True)
    moves = tiers.recompute(session, at=at or utcnow(), actor=actor, dry_run=dry_run)
    if dry_run:
        session.rollback()
    else:
        session.commit()
    return moves


#: members per transaction of expire_points
EXPIRY_BATCH_MEMBERS = 10_000


def expire_points(
    as_of: datetime | None = None, batch: int = EXPIRY_BATCH_MEMBERS
) -> dict[str, int]:
    """Expire what is left of every lot lapsed by `as_of` (now by default) and release the
    pending points due by then, a batch of members per transaction (see ledger.expire_lots).
    Safe to run twice (the second run expires nothing more) and after missed runs (it catches
    up: lots lapse at their own time, whenever the job runs). Returns the totals."""
    session = db.session()
    as_of = as_of or utcnow()
    released = ledger.release_pending(session, as_of)  # first: a lot due then may have lapsed
    session.commit()
    done, after = ledger.Expired(), 0
    while (batch_range := ledger.lapsed_member_range(session, as_of, after, batch)) is not None:
        done.add(ledger.expire_lots(session, *batch_range, as_of=as_of))
        session.commit()
        after = batch_range[1]
    return {
        "lots": done.lots,
        "points": done.points,
        "members": done.members,
        "pending_released": released,
    }


#: batches of rollups.BATCH purchases a periodic metrics_rollup does at most (the next run goes on)
ROLLUP_MAX_BATCHES = 50


def metrics_rollup(max_batches: int | None = ROLLUP_MAX_BATCHES, wait: bool = False) -> int:
    """The purchases past the rollups' watermark into them, a batch per transaction, until
    caught up (or `max_batches`). Safe to run twice or at once (the watermark row is locked):
    a run that finds it locked by another returns 0 at once (PostgreSQL: SKIP LOCKED, so that
    minute after minute of periodic runs never pile up behind a long one), or waits for it with
    `wait` (the command line). Returns how many purchases were rolled up."""
    total, batches = 0, 0
    while max_batches is None or batches < max_batches:
        count = rollups.advance(db.session(), wait=wait)
        db.session.commit()
        total, batches = total + count, batches + 1
        if count == 0:
            break
    return total


def metrics_rebuild() -> int:
    """The rollups made again from every purchase, in one transaction (purchases go on
    meanwhile). Returns how many purchases."""
    count = rollups.rebuild(db.session())
    db.session.commit()
    return count


def register(jobs: Jobs) -> None:
    """The app's jobs and their schedules."""
    jobs.task(STRIPE_MIRROR, mirror_vouchers, priority=10)
    jobs.task(RUN_CAMPAIGN, run_campaign)
    jobs.periodic("stripe_sweep", crontab(minute="*"), stripe_sweep)
    jobs.periodic("campaign_sweep", crontab(minute="*"), campaign_sweep)
    jobs.periodic("release_expired", crontab(minute="*"), release_expired)
    jobs.periodic("prune_idempotency", crontab(minute="17"), prune_idempotency)
    jobs.periodic("recompute_tiers", crontab(hour="2", minute="23"), recompute_tiers)
    jobs.periodic("expire_points", crontab(minute="5"), expire_points)
    jobs.periodic("metrics_rollup", crontab(minute="*"), metrics_rollup)
    jobs.task("metrics_rebuild", metrics_rebuild)
