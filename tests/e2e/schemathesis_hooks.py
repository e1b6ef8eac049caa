"""Schemathesis hooks for the e2e run: values for the formats our OpenAPI document names.

Schemathesis draws a string of a `format` from its own generator. For the formats below the
service takes less than the generic generator draws, and says so in the document; each
strategy draws what the document says is valid, so the positive-data check judges the API
and not the generator.

- `date`, `date-time`: the programme's dates, LOYALTY_MIN_DATE..LOYALTY_MAX_DATE (2000-01-01
  to 2100-12-31 by default, which the run uses), stated in each field's description because
  OpenAPI 3.0 has no keyword for bounds on a date. A time is also never in the future: an
  `occurred_at` in the future is refused (its description says so).
- `card-number` (our own format, defined in the document): 8-19 digits ending in a Luhn check
  digit; pre-printed cards must start with a configured prefix (`990` by default).
- `phone`: a number `phonenumbers` takes (+ and a country code).
- `email`: as schemathesis draws them, without special-use domains (`.test`, `.invalid`,
  `.localhost`, ...), which the service refuses as `email-validator` does.

And two rules between query parameters, which api.md states: a metrics period's `end` is
not before its `start` and spans at most ten years (`map_query` draws such periods); and
`card_number` and `member_id`, when both are given, name one member, else 422
member_mismatch (`filter_failure` accepts that answer to a query that drew both: no schema
can say which card belongs to which member).

What lies outside these strategies (a date outside the bounds, a bad check digit, an end
before the start) is refused with 422: tests/api/test_input_hardening.py and the tests of
each resource check those refusals.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import phonenumbers
import schemathesis
from hypothesis import strategies as st
from schemathesis.specs.openapi.formats import email_values

from loyalty.domain.cards import luhn_check_digit
from loyalty.schemas.metrics import MAX_PERIOD_DAYS

FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)
CARD_PREFIX = "990"
SPECIAL_USE = (".test", ".invalid", ".localhost", ".local", ".onion", ".arpa", ".example")

offsets = st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(hours=-5, minutes=-30)])

schemathesis.openapi.format(
    "date", st.dates(min_value=FIRST_DAY, max_value=LAST_DAY).map(date.isoformat)
)
schemathesis.openapi.format(
    "date-time",
    st.builds(
        lambda moment, offset: moment.replace(tzinfo=UTC).astimezone(timezone(offset)).isoformat(),
        # a day inside either end, so that no offset takes it outside in UTC
        st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime.now() - timedelta(days=1)),
        offsets,
    ),
)
schemathesis.openapi.format(
    "card-number",
    st.from_regex(r"[0-9]{12}", fullmatch=True).map(
        lambda digits: CARD_PREFIX + digits + luhn_check_digit(CARD_PREFIX + digits)
    ),
)
schemathesis.openapi.format(
    "phone",
    st.sampled_from(
        [
            phonenumbers.format_number(
                phonenumbers.example_number(region), phonenumbers.PhoneNumberFormat.E164
            )
            for region in ("NL", "BE", "DE", "GB", "FR", "US")
        ]
    ),
)
schemathesis.openapi.format(
    "email", email_values().filter(lambda e: not e.lower().endswith(SPECIAL_USE))
)


MAX_PERIOD = timedelta(days=MAX_PERIOD_DAYS)


@schemathesis.hook
def map_query(context: schemathesis.HookContext, query: dict | None) -> dict | None:
    """A metrics period as documented: `start` ≤ `end`, at most MAX_PERIOD apart."""
    path = context.operation.path if context.operation is not None else ""
    if not path.startswith("/api/v1/metrics/") or not query:
        return query
    try:
        start, end = date.fromisoformat(query["start"]), date.fromisoformat(query["end"])
    except (KeyError, TypeError, ValueError):
        return query  # not two dates: left as drawn
    start, end = min(start, end), max(start, end)
    return {**query, "start": start.isoformat(), "end": min(end, start + MAX_PERIOD).isoformat()}


@schemathesis.hook
def filter_failure(
    context: schemathesis.HookContext, failure: Any, case: Any, response: Any
) -> bool:
    """Keep every failure but a positive query naming a member twice over, answered with 422
    member_mismatch because the card and the id belong to different members."""
    query = case.query or {}
    if failure.code != "ST202" or not {"card_number", "member_id"} <= set(query):
        return True
    try:
        return response.json().get("code") != "member_mismatch"
    except ValueError:
        return True
