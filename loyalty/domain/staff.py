"""Staff accounts: create, sign in, roles (no Flask here).

A staff member signs in to the back office with an e-mail and a password. The password is
stored as an scrypt hash (N=2^15, r=8, p=1, a 16-byte salt: the format and parameters of
werkzeug's `generate_password_hash` default, computed with the standard library so that the
domain needs no web framework); a check compares in constant time, and an unknown e-mail costs
as much as a wrong password (a dummy hash is checked), so timing does not tell which e-mails
have accounts.

Roles map onto the API's scopes: `reports` reads the metrics (the `reports` scope); `staff`
also finds members, reads them and acts on them (adjust, goodwill, cards, personal data: what
the API asks the `admin` scope for); `admin` also changes the programme and the rewards
catalogue. The audit log records a staff member's actions under their name (`actor_for`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalty.domain.context import Actor
from loyalty.domain.members import normalise_email
from loyalty.errors import Conflict, NotFound, ValidationFailed
from loyalty.models import STAFF_ROLES, ApiClient, StaffAccount, StaffFormNonce
from loyalty.models.types import utcnow

#: what each role may do; each role has the permissions of the roles before it
PERMISSIONS: dict[str, frozenset[str]] = {
    "reports": frozenset({"dashboard"}),
    "staff": frozenset({"dashboard", "members", "feedback"}),
    "admin": frozenset({"dashboard", "members", "feedback", "settings"}),
}
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_METHOD = f"scrypt:{_SCRYPT_N}:{_SCRYPT_R}:{_SCRYPT_P}"


def hash_password(password: str) -> str:
    """`scrypt:32768:8:1$<salt>$<hex digest>` (werkzeug's format)."""
    salt = secrets.token_urlsafe(12)[:16]
    return f"{_METHOD}${salt}${_scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)}"


def _scrypt(password: str, salt: str, n: int, r: int, p: int) -> str:
    return hashlib.scrypt(
        password.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=132 * n * r * p, dklen=64
    ).hex()


def check_password(stored: str, password: str) -> bool:
    """Whether `password` matches the `stored` hash (constant-time comparison)."""
    try:
        method, salt, digest = stored.split("$", 2)
        name, n, r, p = method.split(":")
        if name != "scrypt":
            return False
        computed = _scrypt(password, salt, int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(computed, digest)


#: checked when the e-mail has no account, so that a miss costs what a wrong password costs
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def _check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"A password has at least {MIN_PASSWORD_LENGTH} characters.", field="password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"A password has at most {MAX_PASSWORD_LENGTH} characters.", field="password"
        )


#: names the audit log records other actors under (the CLI, the import, the jobs)
RESERVED_NAMES = frozenset(
    {"cli", "import", "stripe", "recompute_tiers", "expire_points", "system", "worker"}
)


def _check_name_free(session: Session, name: str) -> None:
    """A staff name must not pass for another actor of the audit log: a reserved name or an API
    client's name (case-insensitive). Two staff accounts may share a name: the audit log tells
    them apart by `staff_account_id`."""
    folded = name.casefold()
    if folded in RESERVED_NAMES:
        raise ValidationFailed(f"The name {name!r} is reserved.", field="name")
    if session.scalar(select(ApiClient.id).where(func.lower(ApiClient.name) == folded)):
        raise ValidationFailed("An API client has this name.", field="name")


def create_staff(
    session: Session, email: str, password: str, role: str, *, name: str | None = None
) -> StaffAccount:
    """A new staff account. `name` (default: the e-mail's part before the @) is what the audit
    log records their actions under.

    Raises ValidationFailed (e-mail, role, password, name: reserved or an API client's),
    Conflict (the e-mail has one).
    """
    address = normalise_email(email)
    if address is None:
        raise ValidationFailed("An e-mail address is required.", field="email")
    if role not in STAFF_ROLES:
        raise ValidationFailed(f"A role is one of: {', '.join(STAFF_ROLES)}.", field="role")
    _check_password_rules(password)
    shown = (name or address.split("@", 1)[0]).strip()
    if not shown or len(shown) > 100:
        raise ValidationFailed("A name has 1 to 100 characters.", field="name")
    _check_name_free(session, shown)
    if session.scalar(select(StaffAccount.id).where(StaffAccount.email == address)) is not None:
        raise Conflict("A staff account with this e-mail exists.", field="email")
    account = StaffAccount(
        email=address, name=shown, role=role, password_hash=hash_password(password)
    )
    session.add(account)
    session.flush()
    return account


def set_password(session: Session, account: StaffAccount, password: str) -> None:
    """Give the account a new password (its sessions end: `session_token` changes)."""
    _check_password_rules(password)
    account.password_hash = hash_password(password)
    session.flush()


def authenticate(
    session: Session, email: str, password: str, *, now: datetime | None = None
) -> StaffAccount | None:
    """The enabled account with this e-mail and password, its `last_sign_in_at` set; None when
    either is wrong (which one is not told)."""
    account = check_credentials(session, email, password)
    return record_sign_in(session, account.id, now=now) if account is not None else None


def record_sign_in(
    session: Session, account_id: int, *, now: datetime | None = None
) -> StaffAccount | None:
    """The sign-in of a checked account, in a write transaction: its `last_sign_in_at` set; None
    when it was disabled (or removed) since the check."""
    account = session.get(StaffAccount, account_id, populate_existing=True)
    if account is None or account.disabled_at is not None:
        return None
    account.last_sign_in_at = now or utcnow()
    session.flush()
    return account


def check_credentials(session: Session, email: str, password: str) -> StaffAccount | None:
    """The enabled account with this e-mail and password, or None (which part is wrong is not
    told; an unknown e-mail costs a password check too). Reads only: the slow hash runs without
    a write transaction open (`record_sign_in` then writes)."""
    address = (email or "").strip().lower()
    account = None
    if address and len(address) <= 254 and len(password) <= MAX_PASSWORD_LENGTH:
        account = session.scalar(
            select(StaffAccount).where(func.lower(StaffAccount.email) == address)
        )
    stored = account.password_hash if account is not None else _DUMMY_HASH
    if not check_password(stored, password[:MAX_PASSWORD_LENGTH]) or account is None:
        return None
    if account.disabled_at is not None:
        return None
    return account


def session_token(account: StaffAccount) -> str:
    """A value that changes with the password and at every sign-out: a signed-in session
    remembers it, and a session made before the password changed or before the person signed
    out is no longer accepted."""
    seed = f"{account.password_hash}:{account.session_epoch or 0}"
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def end_sessions(session: Session, account: StaffAccount) -> None:
    """Sign-out: every session of the account ends (its token changes), this one included."""
    account.session_epoch = (account.session_epoch or 0) + 1
    session.flush()


def get_signed_in(session: Session, account_id: object, token: object) -> StaffAccount | None:
    """The enabled account a session names, if its token still matches; else None."""
    if not isinstance(account_id, int) or not isinstance(token, str):
        return None
    account = session.get(StaffAccount, account_id)
    if account is None or account.disabled_at is not None:
        return None
    if not hmac.compare_digest(session_token(account), token):
        return None
    return account


def set_enabled(session: Session, account: StaffAccount, enabled: bool) -> None:
    """Let the account sign in again, or stop it: its sessions end at their next request."""
    account.disabled_at = None if enabled else (account.disabled_at or utcnow())
    session.flush()


def get_staff(session: Session, email: str) -> StaffAccount:
    """The account with this e-mail. Raises NotFound."""
    account = session.scalar(
        select(StaffAccount).where(StaffAccount.email == (email or "").strip().lower())
    )
    if account is None:
        raise NotFound("No staff account with this e-mail.")
    return account


def may(role: str, permission: str) -> bool:
    """Whether `role` has `permission` (dashboard, members, feedback, settings)."""
    return permission in PERMISSIONS.get(role, frozenset())


def actor_for(account: StaffAccount) -> Actor:
    """The staff member as the domain records them: their name in the audit log's `actor`, their
    account's id and e-mail in its detail (`staff_account_id`, `staff_email`). An admin may
    act on what others made, like an admin key."""
    return Actor(
        client_id=None,
        name=account.name,
        admin=account.role in ("staff", "admin"),
        staff_account_id=account.id,
        staff_email=account.email,
    )


#: how long a sent form's nonce is kept (a form older than this is refused: its page is stale)
FORM_NONCE_DAYS = 2


def new_form_nonce() -> str:
    """A nonce for one form of a page (the page keeps it in a hidden field)."""
    return secrets.token_urlsafe(24)


def use_form_nonce(
    session: Session, account: StaffAccount, nonce: str, *, now: datetime | None = None
) -> None:
    """Record that the form with `nonce` was sent, in the transaction of the action it asks
    for: a second submit of the same form (a double click, a resend) is refused, even when the
    two run at once (the second waits on the first's row, then finds it). Old nonces are pruned.

    Raises Conflict (`field` form_nonce) when the form was sent already or has no nonce.
    """
    if not nonce or len(nonce) > 64:
        raise ValidationFailed("The form is stale: open the page again.", field="form_nonce")
    at = now or utcnow()
    session.execute(
        delete(StaffFormNonce).where(StaffFormNonce.used_at < at - timedelta(days=FORM_NONCE_DAYS))
    )
    try:
        with session.begin_nested():
            session.add(StaffFormNonce(nonce=nonce, staff_account_id=account.id, used_at=at))
    except IntegrityError:
        raise Conflict(
            "This form was sent already: it was done once.", field="form_nonce"
        ) from None
