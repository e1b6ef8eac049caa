"""loyalty.domain.audit: the entry shape other modules rely on."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from loyalty.domain import audit
from loyalty.domain.context import Actor


def test_record_keeps_detail_and_adds_changes_and_reason(session) -> None:
    actor = Actor(client_id=None, name="cli", admin=True)
    entry = audit.record(
        session,
        actor,
        "tier.update",
        "tier",
        7,
        {"note": "kept"},
        changes={"threshold": (100, 200)},
        reason="spring review",
    )
    session.flush()
    assert (entry.actor, entry.api_client_id, entry.target_id) == ("cli", None, "7")
    assert entry.detail == {
        "note": "kept",
        "changes": {"threshold": [100, 200]},
        "reason": "spring review",
    }
    # the older call shape (a detail dict alone) still works as it did
    plain = audit.record(session, actor, "x.y", "member", 1, {"fields": ["name"]})
    assert plain.detail == {"fields": ["name"]}


def test_diff_lists_only_what_changed_with_none_for_a_missing_side() -> None:
    before = {"a": 1, "b": "x", "gone": 5}
    after = {"a": 1, "b": "y", "new": [1]}
    assert audit.diff(before, after) == {"b": ("x", "y"), "gone": (5, None), "new": (None, [1])}
    assert audit.diff(before, after, fields=["a", "b"]) == {"b": ("x", "y")}


def test_snapshot_writes_datetimes_as_iso_text() -> None:
    at = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    obj = SimpleNamespace(name="Coffee", active_from=at, stock=None)
    assert audit.snapshot(obj, ["name", "active_from", "stock"]) == {
        "name": "Coffee",
        "active_from": "2026-03-01T10:00:00+00:00",
        "stock": None,
    }


def test_without_personal_nulls_personal_fields_only() -> None:
    detail = {
        "changes": {"email": ["a@x.com", "b@x.com"], "marketing_consent": [False, True]},
        "reason": "asked by phone",
    }
    assert audit.without_personal(detail) == {
        "changes": {"email": [None, None], "marketing_consent": [False, True]},
        "reason": "asked by phone",
    }
    assert audit.without_personal({"points": 5}) == {"points": 5}
