"""Factory functions for test data. They go through the domain, so the data is consistent."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.orm import Session

from loyalty import auth
from loyalty.domain import members
from loyalty.domain.context import Actor, Settings
from loyalty.models import ApiClient, Member

_seq = itertools.count(1)
SETTINGS = Settings()


def next_id() -> int:
    return next(_seq)


def api_client(session: Session, scopes: tuple[str, ...], name: str | None = None) -> str:
    key = auth.generate_key()
    session.add(
        ApiClient(
            name=name or f"client-{next(_seq)}",
            key_hash=auth.hash_key(key),
            key_prefix=key[:12],
            scopes=list(scopes),
        )
    )
    session.flush()
    return key


def member(session: Session, **overrides: Any) -> Member:
    n = next(_seq)
    data: dict[str, Any] = {"name": f"Member {n}", "email": f"member{n}@example.com"}
    data.update(overrides)
    return members.enrol(session, data, settings=SETTINGS, actor=Actor.cli())
