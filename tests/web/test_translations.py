"""Every string of the pages is translated into Dutch, and the compiled .mo files the app reads
(committed: a fresh clone needs no build step) are the .po files as they are now. When this
fails: `make translations`, fill in the empty msgstr, `make translations` again."""

from __future__ import annotations

import pytest
from babel.messages import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from loyalty.web.base import LANGUAGES, TRANSLATIONS_DIR, WEB_DIR

TRANSLATED = [lang for lang in LANGUAGES if lang != "en"]  # English is the source


def _strings() -> set[str]:
    with open(WEB_DIR / "babel.cfg") as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "_l": None}
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEB_DIR), method_map, options_map, keywords=keywords
    ):
        found |= {m for m in _ids(message) if m}
    return found


def _catalog(lang: str) -> Catalog:
    with open(TRANSLATIONS_DIR / lang / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=lang)


def _key(value: str | tuple[str, ...] | list[str]) -> str | tuple[str, ...]:
    """A message id or string as a dict key (a plural one is a list or a tuple)."""
    return value if isinstance(value, str) else tuple(value)


def _ids(message_id: str | tuple[str, ...]) -> set[str]:
    return {message_id} if isinstance(message_id, str) else set(message_id)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_string_of_the_pages_is_translated(lang: str) -> None:
    translated: set[str] = set()
    for m in _catalog(lang):
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        if m.id and all(strings) and not m.fuzzy:
            translated |= _ids(m.id)
    missing = sorted(_strings() - translated)
    assert not missing, f"not translated into {lang} (make translations): {missing}"


@pytest.mark.parametrize("lang", TRANSLATED)
def test_the_compiled_catalog_is_the_po_file(lang: str) -> None:
    with open(TRANSLATIONS_DIR / lang / "LC_MESSAGES" / "messages.mo", "rb") as f:
        compiled = read_mo(f)
    po = {_key(m.id): _key(m.string) for m in _catalog(lang) if m.id and m.string and not m.fuzzy}
    mo = {_key(m.id): _key(m.string) for m in compiled if m.id}
    assert mo == po, "the .mo is not the .po compiled: run `make translations`"
