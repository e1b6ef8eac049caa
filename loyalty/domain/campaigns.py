"""Campaigns: a win-back run as a background job, in batches of members, each batch one
transaction.

    pending ─start→ running ─last batch→ done        running ─too many attempts→ failed

The request that asks for a campaign only creates its row (pending); a job runs the batches
(`start`, then `run_batch` until it says done). Each batch locks the campaign row, goes on from
the campaign's cursor (`last_member_id`) and commits its vouchers, its counts and the cursor
together: a job that crashed, or two jobs running the same campaign, issue nothing twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalty.domain import audit, vouchers
from loyalty.domain.context import Actor
from loyalty.errors import NotFound
from loyalty.models import Campaign
from loyalty.models.types import utcnow

#: session.info key: ids of campaigns whose job is enqueued once the transaction commits
CAMPAIGNS_AFTER_COMMIT = "campaigns_after_commit"

#: what a win-back campaign keeps of its request: the voucher terms and who gets one
WIN_BACK_PARAMS = (
    "inactive_days",
    "kind",
    "value",
    "valid_days",
    "min_spend",
    "holdout_percent",
    "reason",
)


def create_win_back(session: Session, data: dict[str, Any], *, actor: Actor) -> Campaign:
    """A win-back campaign to run (pending): `data` as the win-back request has it (`campaign`
    names it; default win_back:<date>). Nothing is issued here: see `start` and `run_batch`."""
    now = utcnow()
    campaign = Campaign(
        kind="win_back",
        name=vouchers.win_back_campaign_name(data, now),
        params={k: data[k] for k in WIN_BACK_PARAMS if data.get(k) is not None},
        status="pending",
        issued=0,
        holdout=0,
        attempts=0,
        api_client_id=actor.client_id,
        actor=actor.name,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    session.flush()
    return campaign


def run_after_commit(session: Session, campaign_id: int) -> None:
    """Ask for the campaign's job once this transaction commits (the app enqueues it)."""
    session.info.setdefault(CAMPAIGNS_AFTER_COMMIT, set()).add(campaign_id)


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    """Raises NotFound."""
    campaign = session.get(Campaign, campaign_id) if 0 < campaign_id < 2**63 else None
    if campaign is None:
        raise NotFound(f"No campaign {campaign_id}.", field="campaign_id")
    return campaign


def _locked(session: Session, campaign_id: int) -> Campaign | None:
    return session.get(Campaign, campaign_id, with_for_update=True)


def start(session: Session, campaign_id: int, *, max_attempts: int) -> bool:
    """Claim the campaign for a run: pending or running → running, one more attempt. False when
    there is nothing to run: no such campaign, done or failed already, or this would be attempt
    `max_attempts` + 1 (the campaign is then marked failed, with the last error kept)."""
    campaign = _locked(session, campaign_id)
    if campaign is None or campaign.status not in ("pending", "running"):
        return False
    now = utcnow()
    campaign.attempts += 1
    campaign.updated_at = now
    if campaign.attempts > max_attempts:
        campaign.status, campaign.finished_at = "failed", now
        campaign.error = campaign.error or f"gave up after {max_attempts} attempts"
        return False
    campaign.status = "running"
    campaign.started_at = campaign.started_at or now
    return True


def _cutoff(campaign: Campaign) -> datetime:
    """Members whose last purchase is before this are lapsed (fixed when the campaign was made)."""
    return campaign.created_at - timedelta(days=campaign.params["inactive_days"])


def run_batch(session: Session, campaign_id: int, *, limit: int) -> bool:
    """The campaign's next batch of up to `limit` members, in the caller's transaction, under
    the campaign's row lock. True when the campaign is done (this batch was its last) or is not
    running (nothing was done)."""
    campaign = _locked(session, campaign_id)
    if campaign is None or campaign.status != "running":
        return True
    actor = Actor(client_id=campaign.api_client_id, name=campaign.actor)
    batch = vouchers.win_back_batch(
        session,
        campaign.name,
        campaign.params,
        cutoff=_cutoff(campaign),
        after_member_id=campaign.last_member_id,
        limit=limit,
        actor=actor,
    )
    now = utcnow()
    campaign.issued += batch.issued
    campaign.holdout += batch.holdout
    campaign.updated_at = now
    if batch.last_member_id is not None:
        campaign.last_member_id = batch.last_member_id
    if batch.issued + batch.holdout < limit:
        _finish(session, campaign, actor, now)
        return True
    return False


def _finish(session: Session, campaign: Campaign, actor: Actor, now: datetime) -> None:
    campaign.status, campaign.finished_at, campaign.error = "done", now, None
    audit.record(
        session,
        actor,
        "campaign.win_back",
        "campaign",
        campaign.name,
        {
            "campaign_id": campaign.id,
            "eligible": campaign.eligible,
            "issued": campaign.issued,
            "holdout": campaign.holdout,
        },
    )


def record_error(session: Session, campaign_id: int, error: str) -> None:
    """Keep why the last attempt failed (the campaign stays running: a retry goes on)."""
    campaign = _locked(session, campaign_id)
    if campaign is not None:
        campaign.error = error[:500]
        campaign.updated_at = utcnow()


def claim_stale(session: Session, *, untouched_since: datetime, limit: int = 100) -> list[int]:
    """Pending or running campaigns no batch has updated since `untouched_since`: their job was
    lost (never enqueued, or its worker died). Oldest first; each is marked updated now, so the
    next sweeps leave it to the job enqueued for it for as long again."""
    ids = list(
        session.scalars(
            select(Campaign.id)
            .where(
                Campaign.status.in_(("pending", "running")),
                Campaign.updated_at < untouched_since,
            )
            .order_by(Campaign.updated_at)
            .limit(limit)
        )
    )
    if ids:
        session.execute(update(Campaign).where(Campaign.id.in_(ids)).values(updated_at=utcnow()))
    return ids
