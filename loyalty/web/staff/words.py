"""What the back office says in the reader's language: the codes it shows (statuses, kinds,
segments) and the refusals of the domain (by their error code, the common ones; else the
domain's own English sentence, without its field prefix)."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from loyalty.errors import DomainError

#: the codes the pages show, as words
CODES: dict[str, Any] = {
    # card, voucher, redemption statuses
    "active": _l("active"),
    "blocked": _l("blocked"),
    "used": _l("used"),
    "void": _l("void"),
    "reserved": _l("reserved"),
    "redeemed": _l("redeemed"),
    "released": _l("released"),
    "expired": _l("expired"),
    # voucher kinds
    "come_back": _l("come-back"),
    "welcome": _l("welcome"),
    "win_back": _l("win-back"),
    "goodwill": _l("goodwill"),
    # ledger entry kinds
    "earn": _l("earn"),
    "bonus": _l("bonus"),
    "reverse": _l("reverse"),
    "redeem": _l("redeem"),
    "adjust": _l("adjust"),
    "expire": _l("expire"),
    # reward kinds
    "amount_off": _l("amount off"),
    "percent_off": _l("percent off"),
    "free_item": _l("free item"),
    # segments
    "lost": _l("lost"),
    "at_risk": _l("at risk"),
    "new": _l("new"),
    "ambassador": _l("ambassador"),
    "deal_seeker": _l("deal seeker"),
    "loyal": _l("loyal"),
    "occasional": _l("occasional"),
}


def word(code: object) -> str:
    """A code as a word of the reader's language (an unknown code: as it is, _ as a space)."""
    if code is None:
        return "\u2013"
    known = CODES.get(str(code))
    return str(known) if known is not None else str(code).replace("_", " ")


def explain(exc: DomainError) -> str:
    """A refusal as a sentence in the reader's language."""
    fields = set(exc.errors)
    if "form_nonce" in fields:
        if exc.status == 409:
            return _("This form was sent already: it was done once.")
        return _("The form is stale: open the page again.")
    if "version" in fields:
        return _(
            "Another change was saved since this form was opened: look at the programme "
            "again, then make your change."
        )
    sentences = {
        "insufficient_points": _("Not enough points: a correction never makes a debt."),
        "member_erased": _("This member's personal data was erased: nothing more can be done."),
        "card_already_blocked": _("This card is blocked already."),
        "email_taken": _("Another member has this e-mail address."),
        "phone_taken": _("Another member has this phone number."),
        "external_ref_taken": _("Another member has this external reference."),
        "invalid_card_number": _("Not a valid card number."),
        "not_found": _("Not found."),
    }
    if exc.code in sentences:
        return sentences[exc.code]
    if exc.code == "limit_exceeded":
        return _("Above the limit: %(detail)s", detail=_messages(exc))
    return _messages(exc)


#: the schema's and the forms' common messages
_KNOWN = {
    "Not a whole number.": _l("Not a whole number."),
    "Not valid JSON.": _l("Not valid JSON."),
    "Missing data for required field.": _l("This field is required."),
    "A reason must say something: it is blank.": _l("A reason must say something: it is blank."),
    "Longer than maximum length 500.": _l("At most 500 characters."),
}


def _messages(exc: DomainError) -> str:
    """The refusal's messages without field prefixes, the known ones translated."""
    if not exc.errors:
        return str(_KNOWN.get(exc.detail, exc.detail))
    out: list[str] = []
    for messages in exc.errors.values():
        for message in messages:
            text = str(_KNOWN.get(message, message))
            if text not in out:
                out.append(text)
    return " ".join(out)
