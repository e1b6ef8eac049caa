"""Vouchers (return credit): codes, issuing by policy or by staff, checking and using them.

Codes are 10 characters from an alphabet without look-alikes (no 0/O, 1/I/L), from `secrets`,
shown as ABCD-EFGH-JK and read case-insensitively with or without dashes. Discounts are
integers: a percentage rounds down to the minor unit; an amount off never exceeds the basket.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from loyalty.domain import audit
from loyalty.domain.context import Actor, Limits
from loyalty.domain.program import check_currency, get_program
from loyalty.errors import (
    BelowMinSpend,
    DomainError,
    NotFound,
    VoucherExpired,
    VoucherNotYetValid,
    VoucherUsed,
    VoucherVoid,
    VoucherWrongMember,
)
from loyalty.models import Member, Purchase, Voucher, VoucherHoldout
from loyalty.models.types import utcnow

#: session.info key: ids of vouchers whose Stripe mirror must change once the transaction commits
MIRROR_AFTER_COMMIT = "stripe_sync"
#: session.info key, set by the app as each transaction begins: True when Stripe is configured,
#: so the vouchers this transaction issues, uses or voids are marked for the coupon mirror.
MIRROR_ON = "stripe_mirror_on"

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10


def _mirror_after_commit(session: Session, voucher: Voucher) -> None:
    """Mark the voucher's Stripe coupon as due to change (`pending`, in this transaction) when
    Stripe is on, and note its id: the app enqueues the mirror job once the transaction commits,
    and the periodic sweep finds the mark if that enqueue is lost. A voucher that was never
    mirrored (issued while Stripe was off) has no coupon to delete and is left alone."""
    if not session.info.get(MIRROR_ON) or voucher.stripe_status not in ("pending", "synced"):
        return
    _mark_pending(voucher)
    _note_for_mirror(session, voucher.id)


def _mark_pending(voucher: Voucher) -> None:
    voucher.stripe_status, voucher.stripe_updated_at = "pending", utcnow()


def _note_for_mirror(session: Session, voucher_id: int) -> None:
    session.info.setdefault(MIRROR_AFTER_COMMIT, set()).add(voucher_id)


def generate_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(raw: str) -> str | None:
    """The stored form of a typed code, or None when it cannot be one of ours."""
    code = "".join(raw.split()).replace("-", "").upper()
    if len(code) != CODE_LENGTH or any(ch not in ALPHABET for ch in code):
        return None
    return code


def discount_for(voucher: Voucher, amount: int) -> int:
    """What the voucher takes off a basket of `amount` minor units."""
    if voucher.discount_type == "percent":
        return amount * voucher.value // 100
    return min(voucher.value, amount)


def in_holdout(member_id: int, campaign: str, holdout_percent: int) -> bool:
    """Deterministic by member and campaign: the same member is always in or out of a campaign's
    holdout, and about `holdout_percent` % of members are in."""
    if holdout_percent <= 0:
        return False
    digest = hashlib.sha256(f"{campaign}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < holdout_percent


def start_of_next_day(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=now.tzinfo)


def get_voucher(session: Session, raw_code: str, *, for_update: bool = False) -> Voucher:
    """Raises NotFound (also for text that cannot be a code)."""
    code = normalise_code(raw_code)
    voucher = None
    if code is not None:
        query = select(Voucher).where(Voucher.code == code)
        voucher = session.scalar(query.with_for_update() if for_update else query)
    if voucher is None:
        raise NotFound("No such voucher.", field="code")
    return voucher


def issue(
    session: Session,
    member_id: int,
    *,
    kind: str,
    discount_type: str,
    value: int,
    valid_from: datetime,
    valid_days: int,
    min_spend: int = 0,
    reason: str | None = None,
    campaign: str | None = None,
    source_purchase_id: int | None = None,
    actor: Actor,
) -> Voucher:
    """A new voucher for the member in the programme's currency."""
    currency = get_program(session).currency
    while True:
        code = generate_code()
        if session.scalar(select(Voucher.id).where(Voucher.code == code)) is None:
            break
    voucher = Voucher(
        code=code,
        member_id=member_id,
        kind=kind,
        discount_type=discount_type,
        value=value,
        currency=currency,
        min_spend=min_spend,
        valid_from=valid_from,
        valid_until=valid_from + timedelta(days=valid_days),
        status="active",
        reason=reason,
        campaign=campaign,
        source_purchase_id=source_purchase_id,
        api_client_id=actor.client_id,
    )
    mirrored = bool(session.info.get(MIRROR_ON))
    if mirrored:  # its coupon is created by a job after the commit
        _mark_pending(voucher)
    session.add(voucher)
    session.flush()
    if mirrored:
        _note_for_mirror(session, voucher.id)
    return voucher


def issue_on_terms(
    session: Session,
    member_id: int,
    kind: str,
    terms: dict[str, Any],
    *,
    valid_from: datetime,
    actor: Actor,
    **extra: Any,
) -> Voucher:
    """`issue` from a policy's or a request's terms: `kind` (amount | percent, as api.md
    names it), `value`, `valid_days`, `min_spend`."""
    return issue(
        session,
        member_id,
        kind=kind,
        discount_type=terms["kind"],
        value=terms["value"],
        valid_from=valid_from,
        valid_days=terms["valid_days"],
        min_spend=terms.get("min_spend") or 0,
        actor=actor,
        **extra,
    )


def check(
    voucher: Voucher,
    amount: int,
    *,
    member_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """The discount the voucher gives on `amount`, or why it does not apply.

    Raises VoucherUsed, VoucherVoid, VoucherNotYetValid, VoucherExpired, VoucherWrongMember,
    BelowMinSpend.
    """
    now = now or utcnow()
    if voucher.status == "used":
        raise VoucherUsed(field="code")
    if voucher.status == "void":
        raise VoucherVoid(field="code")
    if now < voucher.valid_from:
        raise VoucherNotYetValid(f"Valid from {voucher.valid_from.isoformat()}.", field="code")
    if now >= voucher.valid_until:
        raise VoucherExpired(f"Expired at {voucher.valid_until.isoformat()}.", field="code")
    if member_id is not None and member_id != voucher.member_id:
        raise VoucherWrongMember(field="code")
    if amount < voucher.min_spend:
        raise BelowMinSpend(
            f"Spend at least {voucher.min_spend} (minor units) to use this voucher.",
            field="amount",
        )
    return discount_for(voucher, amount)


def assess(voucher: Voucher, amount: int, *, member_id: int | None = None) -> dict[str, Any]:
    """What a checkout asks before using a voucher: does it apply to this basket, what does it
    take off, and if not, the refusal it would get (code and detail)."""
    try:
        discount = check(voucher, amount, member_id=member_id)
    except DomainError as refused:
        return {
            "applicable": False,
            "discount": None,
            "refusal": {"code": refused.code, "detail": refused.detail},
        }
    return {"applicable": True, "discount": discount, "refusal": None}


def redeem(
    session: Session,
    raw_code: str,
    data: dict[str, Any],
    *,
    actor: Actor,
    purchase_id: int | None = None,
) -> tuple[Voucher, int]:
    """Use the voucher once: (voucher, discount). Of concurrent redeems exactly one wins (a
    conditional UPDATE); the others get VoucherUsed. Raises what `check` raises, NotFound,
    CurrencyMismatch."""
    voucher = get_voucher(session, raw_code)
    check_currency(get_program(session), data["currency"])
    discount = check(voucher, data["amount"], member_id=data.get("member_id"))
    used = session.execute(
        update(Voucher)
        .where(Voucher.id == voucher.id, Voucher.status == "active")
        .values(
            status="used",
            used_at=utcnow(),
            used_order_ref=data.get("order_ref"),
            used_purchase_id=purchase_id,
            discount_given=discount,
        )
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise VoucherUsed(field="code")
    session.refresh(voucher)
    _mirror_after_commit(session, voucher)  # the coupon goes
    return voucher, discount


def void(session: Session, raw_code: str, reason: str, *, actor: Actor) -> Voucher:
    """Staff withdraw an unused voucher (its Stripe coupon is deleted after the commit).

    Voiding a void one again answers with it. Raises NotFound, VoucherUsed.
    """
    voucher = get_voucher(session, raw_code, for_update=True)
    if voucher.status == "used":
        raise VoucherUsed("A used voucher cannot be voided.", field="code")
    if voucher.status == "active":
        voucher.status = "void"
        voucher.reason = reason
        _mirror_after_commit(session, voucher)
        session.flush()
        audit.record(
            session,
            actor,
            "voucher.void",
            "member",
            voucher.member_id,
            {"code": voucher.display_code},
            changes={"status": ("active", "void")},
            reason=reason,
        )
    return voucher


def list_for_member(
    session: Session, member_id: int, *, offset: int, limit: int
) -> tuple[list[Voucher], int]:
    where = Voucher.member_id == member_id
    total = session.scalar(select(func.count()).select_from(Voucher).where(where)) or 0
    items = session.scalars(
        select(Voucher).where(where).order_by(Voucher.id.desc()).offset(offset).limit(limit)
    ).all()
    return list(items), total


def goodwill(
    session: Session, member_id: int, data: dict[str, Any], *, actor: Actor, limits: Limits
) -> Voucher:
    """Staff issue a voucher after a complaint, valid from now; audit-logged with the reason.

    Raises LimitExceeded (`value` above `limits.max_goodwill_amount`, or for a percentage
    `max_goodwill_percent`), NotFound, MemberErased (an erased member is inert).
    """
    from loyalty.domain.members import refuse_erased  # here: members imports this module

    member = session.get(Member, member_id) if 0 < member_id < 2**63 else None
    if member is None:
        raise NotFound(f"No member {member_id}.", field="member_id")
    refuse_erased(member.erased_at, field="member_id")
    ceiling = "max_goodwill_percent" if data["kind"] == "percent" else "max_goodwill_amount"
    limits.check(ceiling, data["value"], field="value")
    voucher = issue_on_terms(
        session,
        member_id,
        "goodwill",
        data,
        valid_from=utcnow(),
        reason=data["reason"],
        actor=actor,
    )
    audit.record(
        session,
        actor,
        "voucher.goodwill",
        "member",
        member_id,
        {"code": voucher.display_code},
        changes=audit.diff(
            {},
            {
                "voucher": voucher.display_code,
                "discount_type": voucher.discount_type,
                "value": voucher.value,
                "valid_until": voucher.valid_until.isoformat(),
            },
        ),
        reason=data["reason"],
    )
    return voucher


# policies ---------------------------------------------------------------------------------------
def welcome(session: Session, member_id: int, *, actor: Actor) -> Voucher | None:
    """The programme's welcome voucher, valid from enrolment, if the policy is on."""
    policy = get_program(session).welcome_policy
    if not policy:
        return None
    return issue_on_terms(
        session,
        member_id,
        "welcome",
        policy,
        valid_from=utcnow(),
        campaign="welcome",
        actor=actor,
    )


def come_back(
    session: Session,
    member_id: int,
    purchase_id: int,
    amount: int,
    policy: dict[str, Any] | None,
    *,
    actor: Actor,
) -> Voucher | None:
    """After a qualifying purchase: a voucher valid from the next day, or a holdout record."""
    if not policy or amount < policy.get("min_purchase", 0):
        return None
    now = utcnow()
    valid_from = start_of_next_day(now)
    holdout = policy.get("holdout_percent", 0)
    if in_holdout(member_id, "come_back", holdout):
        session.add(
            VoucherHoldout(
                member_id=member_id,
                kind="come_back",
                campaign="come_back",
                valid_from=valid_from,
                valid_until=valid_from + timedelta(days=policy["valid_days"]),
                source_purchase_id=purchase_id,
                holdout_percent=holdout,
            )
        )
        return None
    return issue_on_terms(
        session,
        member_id,
        "come_back",
        policy,
        valid_from=valid_from,
        campaign="come_back",
        source_purchase_id=purchase_id,
        actor=actor,
    )


@dataclass
class WinBackResult:
    """What a win-back campaign would do now (a dry run)."""

    campaign: str
    dry_run: bool
    eligible: int
    issued: int
    holdout: int


@dataclass
class WinBackBatch:
    issued: int
    holdout: int
    #: the highest member id dealt with, None when no member was left
    last_member_id: int | None


def win_back_campaign_name(data: dict[str, Any], now: datetime) -> str:
    return data.get("campaign") or f"win_back:{now.date().isoformat()}"


def _win_back_members(campaign: str, cutoff: datetime, now: datetime) -> Select[int]:
    """Members whose last purchase is before `cutoff`, not erased, holding no open win-back
    voucher, given no voucher by this campaign and not held out of it."""
    last_purchase = (
        select(func.max(Purchase.occurred_at))
        .where(Purchase.member_id == Member.id)
        .scalar_subquery()
    )
    has_voucher = exists().where(
        Voucher.member_id == Member.id,
        Voucher.kind == "win_back",
        or_(
            Voucher.campaign == campaign,
            and_(Voucher.status == "active", Voucher.valid_until > now),
        ),
    )
    held_out = exists().where(
        and_(VoucherHoldout.member_id == Member.id, VoucherHoldout.campaign == campaign)
    )
    return select(Member.id).where(
        Member.erased_at.is_(None), last_purchase < cutoff, ~has_voucher, ~held_out
    )


def win_back_preview(session: Session, data: dict[str, Any]) -> WinBackResult:
    """A dry run: how many members a win-back campaign would reach now (`inactive_days`,
    `campaign`, `holdout_percent` of `data`), and how many of them it would hold out. Writes
    nothing."""
    now = utcnow()
    campaign = win_back_campaign_name(data, now)
    cutoff = now - timedelta(days=data["inactive_days"])
    member_ids = session.scalars(_win_back_members(campaign, cutoff, now)).all()
    holdout_percent = data.get("holdout_percent") or 0
    held = sum(1 for m in member_ids if in_holdout(m, campaign, holdout_percent))
    return WinBackResult(campaign, True, len(member_ids), len(member_ids) - held, held)


#: PostgreSQL advisory lock key of the win-back batches (any fixed number; no other user)
WIN_BACK_LOCK = 0x10CA17_B4C


def _one_win_back_batch_at_a_time(session: Session) -> None:
    """Batches of two campaigns run one after the other (PostgreSQL; SQLite has one writer at a
    time already): a member the first gives a win-back voucher holds an open one when the second
    looks, so it gets none from the second. The lock goes with the transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(WIN_BACK_LOCK)))


def win_back_batch(
    session: Session,
    campaign: str,
    terms: dict[str, Any],
    *,
    cutoff: datetime,
    after_member_id: int | None,
    limit: int,
    actor: Actor,
) -> WinBackBatch:
    """The next `limit` members of a win-back campaign (ids above `after_member_id`, last
    purchase before `cutoff`): a `win_back` voucher each on `terms`, or a holdout record for the
    `holdout_percent` the campaign holds out (deterministic by member and campaign). Members the
    campaign already dealt with are never picked again, so a batch run twice issues nothing
    twice."""
    _one_win_back_batch_at_a_time(session)
    now = utcnow()
    query = _win_back_members(campaign, cutoff, now)
    if after_member_id is not None:
        query = query.where(Member.id > after_member_id)
    member_ids = session.scalars(query.order_by(Member.id).limit(limit)).all()
    holdout_percent = terms.get("holdout_percent") or 0
    held = 0
    for member_id in member_ids:
        if in_holdout(member_id, campaign, holdout_percent):
            held += 1
            session.add(
                VoucherHoldout(
                    member_id=member_id,
                    kind="win_back",
                    campaign=campaign,
                    valid_from=now,
                    valid_until=now + timedelta(days=terms["valid_days"]),
                    holdout_percent=holdout_percent,
                )
            )
        else:
            issue_on_terms(
                session,
                member_id,
                "win_back",
                terms,
                valid_from=now,
                campaign=campaign,
                actor=actor,
            )
    session.flush()
    last = member_ids[-1] if member_ids else None
    return WinBackBatch(issued=len(member_ids) - held, holdout=held, last_member_id=last)
