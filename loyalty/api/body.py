"""The one place a request body becomes JSON: every view's body comes through here.

`strict_loads` is the application's JSON reader (`app.json`, so `request.get_json()` uses it),
and the schemas' parser (`BodyParser`, every blueprint's `@blp.arguments`) reads bodies with
`request.get_json()`. It takes UTF-8 JSON as RFC 8259 describes it and refuses, with 400
`invalid_json` naming `_body`, what it would otherwise read wrongly or at a cost:

- a key twice in one object (which value was meant?);
- nesting deeper than `MAX_DEPTH` (no body of ours is deeper than a few levels);
- an integer literal with more digits than any integer field takes (the fields' own ranges
  then give 422 naming the field for anything shorter), `NaN`, `Infinity` and numbers too
  large for a float;
- bytes that are not UTF-8.

A body sent with another Content-Type than `application/json` (or `…+json`) is refused with
415 `unsupported_media_type` instead of being read as no body at all.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import Request
from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser

from loyalty.errors import InvalidJSON, UnsupportedMediaType
from loyalty.schemas.common import MAX_INT_DIGITS

#: Containers inside containers: the deepest body we take (ours are at most 4 deep).
MAX_DEPTH = 32


class JSONRefused(ValueError):
    """A body this reader does not take (a ValueError, as Flask's get_json expects)."""


def _parse_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONRefused(f"A number has more than {MAX_INT_DIGITS} digits.")
    return int(literal)


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise JSONRefused("A number is too large.")
    return value


def _parse_constant(name: str) -> Any:
    raise JSONRefused(f"{name} is not a JSON number.")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                shown = key if len(key) <= 40 else key[:40] + "…"
                raise JSONRefused(f"The key {shown!r} appears twice in one object.")
            seen.add(key)
    return obj


def _check_depth(value: Any) -> None:
    """Iteratively (no recursion to exhaust): no container deeper than MAX_DEPTH."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise JSONRefused(f"The body is nested more than {MAX_DEPTH} levels deep.")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def strict_loads(data: str | bytes) -> Any:
    """JSON text (UTF-8 bytes or str) → Python values; JSONRefused for what we do not take."""
    if isinstance(data, bytes | bytearray):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONRefused("The body is not UTF-8.") from None
    try:
        value = json.loads(
            data,
            object_pairs_hook=_unique_keys,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except RecursionError:
        raise JSONRefused(f"The body is nested more than {MAX_DEPTH} levels deep.") from None
    if isinstance(value, dict | list):
        _check_depth(value)
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, reading with `strict_loads` (writing is unchanged)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strict_loads(s)


class LoyaltyRequest(Request):
    """`get_json()` failures as our problems: 415 for another Content-Type, 400 for bad JSON."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            raise UnsupportedMediaType(
                f"Send the body as JSON with Content-Type: application/json "
                f"(not {self.mimetype or 'none'}).",
                field="Content-Type",
            )
        detail = str(e) if isinstance(e, JSONRefused) else f"Not valid JSON: {e}."
        raise InvalidJSON(detail, field="_body")


class BodyParser(FlaskParser):
    """webargs' parser, reading a JSON body with `request.get_json()` (above); no body at all
    is no body (the schema's required fields say what is missing)."""

    def _raw_load_json(self, req: Request) -> Any:
        if not req.get_data(cache=True):
            return core.missing
        return req.get_json()
