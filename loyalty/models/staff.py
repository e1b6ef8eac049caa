"""Staff accounts: the people who sign in to the back office (`/staff`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.models.base import Base
from loyalty.models.types import BigIntPK, UTCDateTime, utcnow

#: reports: the dashboard; staff: also members (look up, act); admin: also the programme
STAFF_ROLES = ("reports", "staff", "admin")


class StaffAccount(Base):
    """A person with a password (hashed: werkzeug's scrypt), a role and a name the audit log
    records their actions under. `disabled_at`: they can no longer sign in."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: lower-cased; signs in with it
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: bumped when the person signs out: every session signed in before ends with it (a cookie
    #: copied before the sign-out opens nothing)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class StaffFormNonce(Base):
    """A one-time form of the back office that was sent: its nonce is stored in the transaction
    of the action it asked for, so that a second submit of the same form (a double click, the
    browser's resend) finds it and does nothing (`loyalty.domain.staff.use_form_nonce`)."""

    __tablename__ = "staff_form_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_account_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("staff_accounts.id"), index=True
    )
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
