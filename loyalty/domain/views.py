"""View objects: what a listing adds to a row, without writing attributes onto the ORM row."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class Annotated:
    """`row` read through, with `extra` attributes beside it (for a schema to dump)."""

    __slots__ = ("_extra", "_row")

    def __init__(self, row: Any, **extra: Any) -> None:
        object.__setattr__(self, "_row", row)
        object.__setattr__(self, "_extra", extra)

    def __getattr__(self, name: str) -> Any:
        extra = object.__getattribute__(self, "_extra")
        if name in extra:
            return extra[name]
        return getattr(object.__getattribute__(self, "_row"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a view is read-only")


class Redacted(Annotated):
    """An `Annotated` view without the `hidden` attributes: a schema dumping it leaves them out
    (what a caller may not read is absent, not null)."""

    __slots__ = ("_hidden",)

    def __init__(self, row: Any, hidden: Iterable[str] = (), **extra: Any) -> None:
        super().__init__(row, **extra)
        object.__setattr__(self, "_hidden", frozenset(hidden))

    def __getattr__(self, name: str) -> Any:
        if name in object.__getattribute__(self, "_hidden"):
            raise AttributeError(name)
        return super().__getattr__(name)
