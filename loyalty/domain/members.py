"""Members and cards: enrol, read, change, erase, search, issue and block cards."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from loyalty.domain import audit, erasure, vouchers
from loyalty.domain.cards import check_in_range, generate_card_number, normalise_card_number
from loyalty.domain.context import Actor, Settings
from loyalty.errors import (
    CardAlreadyBlocked,
    CardBlocked,
    CardInUse,
    EmailTaken,
    ExternalRefTaken,
    MemberErased,
    MemberMismatch,
    NotFound,
    PhoneTaken,
    ValidationFailed,
)
from loyalty.models import Card, Member, Voucher
from loyalty.models.types import utcnow

PERSONAL_FIELDS = ("name", "email", "phone", "marketing_consent", "external_ref")


# normalisation -------------------------------------------------------------------------------
def normalise_email(raw: str | None) -> str | None:
    """Trimmed, validated (syntax only, no DNS) and lower-cased; empty → None.

    Raises ValidationFailed (field `email`).
    """
    if raw is None or not raw.strip():
        return None
    try:
        info = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed(str(exc), field="email") from None
    email = info.normalized.lower()
    if len(email) > 254:
        raise ValidationFailed("An e-mail address has at most 254 characters.", field="email")
    return email


def normalise_phone(raw: str | None, region: str | None) -> str | None:
    """E.164 (`+31612345678`); a number without `+` is read in `region`. Empty → None.

    Raises ValidationFailed (field `phone`).
    """
    if raw is None or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        hint = "" if region else " (start with + and the country code)"
        raise ValidationFailed(f"Not a phone number{hint}.", field="phone") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed("Not a valid phone number.", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# lookups --------------------------------------------------------------------------------------
def get_member(session: Session, member_id: int, *, for_update: bool = False) -> Member:
    """Raises NotFound."""
    member = (
        session.get(Member, member_id, with_for_update=for_update)
        if 0 < member_id < 2**63
        else None
    )
    if member is None:
        raise NotFound(f"No member {member_id}.", field="member_id")
    return member


def get_card(session: Session, raw_number: str) -> Card:
    """The card for a typed number. Raises InvalidCardNumber (422) or NotFound (404)."""
    number = normalise_card_number(raw_number)
    card = session.scalar(select(Card).where(Card.number == number))
    if card is None:
        raise NotFound(f"No card {number}.", field="card_number")
    return card


def require_member_ref(card_number: str | None, member_id: int | None) -> None:
    """A body names its member with card_number or member_id. Raises ValidationFailed."""
    if card_number is None and member_id is None:
        raise ValidationFailed(
            "Name the member with card_number or member_id.",
            errors={"card_number": ["card_number or member_id is required."]},
        )


def refuse_erased(erased_at: datetime | None, *, field: str) -> None:
    """An erased member is anonymous and inert: they earn no points, use no card and give no
    feedback (DELETE /members/{id} blocked their cards). Raises MemberErased (409)."""
    if erased_at is not None:
        raise MemberErased(
            "This member's personal data was erased: the account earns nothing and its cards "
            "are blocked.",
            field=field,
        )


def check_card_use(
    number: str, status: str, owner_id: int, member_id: int | None, *, for_use: bool = True
) -> None:
    """The refusals for a card a body names: blocked (when it is to be used) or another member's
    than `member_id`. Raises CardBlocked, MemberMismatch."""
    if for_use and status == "blocked":
        raise CardBlocked(f"Card {number} is blocked.", field="card_number")
    if member_id is not None and owner_id != member_id:
        raise MemberMismatch(field="member_id")


def resolve_member(
    session: Session,
    *,
    card_number: str | None = None,
    member_id: int | None = None,
    for_use: bool = True,
) -> Member:
    """The member a request body names with `card_number` or `member_id` (or both, agreeing).

    `for_use`: an erased member (409 `member_erased`) and a blocked card (422 `card_blocked`) are
    refused, as for every operation but lookup.
    Raises ValidationFailed (neither given), MemberMismatch, InvalidCardNumber, NotFound,
    MemberErased, CardBlocked.
    """
    require_member_ref(card_number, member_id)
    member = None
    if card_number is not None:
        card = get_card(session, card_number)
        if for_use:
            refuse_erased(card.member.erased_at, field="card_number")
        check_card_use(card.number, card.status, card.member_id, member_id, for_use=for_use)
        member = card.member
    if member is None:
        assert member_id is not None
        member = get_member(session, member_id)
        if for_use:
            refuse_erased(member.erased_at, field="member_id")
    assert member is not None
    return member


# uniqueness -----------------------------------------------------------------------------------
def _check_unique(session: Session, field: str, value: str | None, member_id: int | None) -> None:
    if value is None:
        return
    column = getattr(Member, field)
    query = select(Member.id).where(column == value)
    if member_id is not None:
        query = query.where(Member.id != member_id)
    if session.scalar(query.limit(1)) is not None:
        error = {"email": EmailTaken, "phone": PhoneTaken, "external_ref": ExternalRefTaken}[field]
        raise error(field=field)


def _new_card(session: Session, member: Member, raw_number: str | None, settings: Settings) -> Card:
    if raw_number is not None:
        number = check_in_range(normalise_card_number(raw_number), settings.issuable_prefixes)
        existing = session.scalar(select(Card).where(Card.number == number))
        if existing is not None:
            if existing.status == "blocked":
                raise CardBlocked(f"Card {number} is blocked.", field="card_number")
            raise CardInUse(f"Card {number} belongs to a member already.", field="card_number")
    else:
        while True:
            number = generate_card_number(settings.card_prefix, settings.card_length)
            if session.scalar(select(Card.id).where(Card.number == number)) is None:
                break
    card = Card(number=number, member=member, status="active")
    session.add(card)
    return card


# commands -------------------------------------------------------------------------------------
def enrol(
    session: Session,
    data: dict[str, Any],
    *,
    settings: Settings,
    actor: Actor,
) -> Member:
    """`enrol_member`, for callers that need only the member (the CLI, tests)."""
    return enrol_member(session, data, settings=settings, actor=actor)[0]


def enrol_member(
    session: Session,
    data: dict[str, Any],
    *,
    settings: Settings,
    actor: Actor,
) -> tuple[Member, Voucher | None]:
    """Enrol a customer with a first card (the pre-printed `card_number` given, or a new one)
    and, when the programme's welcome policy is on, a welcome voucher: (member, voucher or None).

    Raises ValidationFailed, EmailTaken, PhoneTaken, ExternalRefTaken, InvalidCardNumber,
    CardInUse, CardBlocked.
    """
    email = normalise_email(data.get("email"))
    phone = normalise_phone(data.get("phone"), settings.phone_region)
    external_ref = data.get("external_ref") or None
    _check_unique(session, "email", email, None)
    _check_unique(session, "phone", phone, None)
    _check_unique(session, "external_ref", external_ref, None)
    member = Member(
        name=(data.get("name") or "").strip() or None,
        email=email,
        phone=phone,
        marketing_consent=bool(data.get("marketing_consent", False)),
        external_ref=external_ref,
        points=0,
        held=0,
    )
    session.add(member)
    _new_card(session, member, data.get("card_number"), settings)
    session.flush()
    return member, vouchers.welcome(session, member.id, actor=actor)


def update_member(
    session: Session, member: Member, changes: dict[str, Any], *, settings: Settings, actor: Actor
) -> Member:
    """Change personal data or consent (only the fields given). Audit-logged.

    Raises MemberErased, ValidationFailed, EmailTaken, PhoneTaken, ExternalRefTaken.
    """
    if member.erased_at is not None:
        raise MemberErased()
    if "email" in changes:
        changes["email"] = normalise_email(changes["email"])
        _check_unique(session, "email", changes["email"], member.id)
    if "phone" in changes:
        changes["phone"] = normalise_phone(changes["phone"], settings.phone_region)
        _check_unique(session, "phone", changes["phone"], member.id)
    if "external_ref" in changes:
        changes["external_ref"] = changes["external_ref"] or None
        _check_unique(session, "external_ref", changes["external_ref"], member.id)
    if "name" in changes:
        changes["name"] = (changes["name"] or "").strip() or None
    if "marketing_consent" in changes and changes["marketing_consent"] is None:
        changes["marketing_consent"] = False
    changed = sorted(k for k, v in changes.items() if getattr(member, k) != v)
    before = audit.snapshot(member, changed)
    for key in changed:
        setattr(member, key, changes[key])
    session.flush()
    if changed:
        audit.record(
            session,
            actor,
            "member.update",
            "member",
            member.id,
            {"fields": changed},
            changes=audit.diff(before, audit.snapshot(member, changed)),
        )
    return member


def erase_member(session: Session, member: Member, *, actor: Actor) -> Member:
    """Erase personal data (right to be forgotten); `member` locked. Purchases, the ledger and
    the balance stay, for the books and the metrics.

    The personal columns are cleared and `erased_at` set; the member's cards are blocked (reason
    `member_erased`) and the account earns nothing more (`refuse_erased`); the free text kept
    about the member (ledger notes, voucher reasons, feedback comments, card block reasons,
    audit details, stored Idempotency-Key responses) is redacted (`erasure.redact_traces`).
    Idempotent: erasing again changes nothing, but finishes what an erasure made before these
    rules existed left behind (active cards, free text).
    """
    first = member.erased_at is None
    personal = (member.name, member.email, member.phone, member.external_ref)
    now = utcnow()
    if first:
        member.name = member.email = member.phone = member.external_ref = None
        member.marketing_consent = False
        member.erased_at = now
    blocked = 0
    for card in member.cards:
        if card.status == "active":
            card.status, card.blocked_at, card.block_reason = "blocked", now, erasure.ERASED
            blocked += 1
    session.flush()
    erasure.redact_traces(
        session, member.id, personal=personal, identifiers=(personal[1], personal[2])
    )
    if first:
        cleared = [f for f, v in zip(audit.PERSONAL_FIELDS_ORDER, personal, strict=True) if v]
        audit.record(
            session,
            actor,
            "member.erase",
            "member",
            member.id,
            {"cards_blocked": blocked, "fields_cleared": cleared},
            changes={"erased_at": (None, now.isoformat())},
        )
    return member


def issue_card(
    session: Session,
    member: Member,
    raw_number: str | None,
    *,
    settings: Settings,
    actor: Actor,
) -> Card:
    """Another card for the member (a replacement, or a pre-printed one being activated).

    Raises MemberErased, InvalidCardNumber, CardNumberOutOfRange, CardInUse, CardBlocked.
    """
    refuse_erased(member.erased_at, field="member_id")
    card = _new_card(session, member, raw_number, settings)
    session.flush()
    audit.record(
        session,
        actor,
        "card.issue",
        "member",
        member.id,
        {"card_number": card.number},
        changes={"cards": (None, card.number)},
    )
    return card


def replace_card(
    session: Session,
    member_id: int,
    raw_number: str,
    reason: str | None,
    *,
    settings: Settings,
    actor: Actor,
) -> Card:
    """Block the member's lost or stolen card and issue a new one (`block_card`, then
    `issue_card`). The member is locked first, so that two replacements at once replace the
    card once: the second finds it blocked. Returns the new card.

    Raises NotFound (no such member, or the card is not theirs), InvalidCardNumber,
    CardAlreadyBlocked, MemberErased.
    """
    member = get_member(session, member_id, for_update=True)
    card = get_card(session, raw_number)
    if card.member_id != member_id:
        raise NotFound("The member has no such card.", field="card_number")
    block_card(session, card.number, reason, actor=actor)
    return issue_card(session, member, None, settings=settings, actor=actor)


def block_card(session: Session, raw_number: str, reason: str | None, *, actor: Actor) -> Card:
    """Block a card (lost or stolen). Terminal: issue a new card to replace it.

    Raises InvalidCardNumber, NotFound, CardAlreadyBlocked.
    """
    card = get_card(session, raw_number)
    if card.status == "blocked":
        raise CardAlreadyBlocked(field="card_number")
    before = card.status
    card.status = "blocked"
    card.blocked_at = utcnow()
    card.block_reason = reason
    session.flush()
    audit.record(
        session,
        actor,
        "card.block",
        "member",
        card.member_id,
        {"card_number": card.number},
        changes={"status": (before, card.status)},
        reason=reason,
    )
    return card


def search_members(
    session: Session,
    *,
    email: str | None = None,
    phone: str | None = None,
    card_number: str | None = None,
    q: str | None = None,
    settings: Settings,
    offset: int,
    limit: int,
) -> tuple[list[Member], int]:
    """Members matching every filter given, newest first, and the total count.

    `q` matches part of the name, e-mail or phone, case-insensitively.
    """
    query = select(Member)
    if email is not None:
        query = query.where(Member.email == normalise_email(email))
    if phone is not None:
        query = query.where(Member.phone == normalise_phone(phone, settings.phone_region))
    if card_number is not None:
        number = normalise_card_number(card_number)
        query = query.where(Member.id.in_(select(Card.member_id).where(Card.number == number)))
    if q:
        pattern = (
            "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        query = query.where(
            or_(
                func.lower(Member.name).like(pattern, escape="\\"),
                Member.email.like(pattern, escape="\\"),
                Member.phone.like(pattern, escape="\\"),
            )
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(
        session.scalars(
            query.order_by(Member.created_at.desc(), Member.id.desc()).offset(offset).limit(limit)
        )
    )
    return items, total
