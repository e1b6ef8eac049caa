"""The layers hold: the rules import without the web framework, the extensions without the API."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import loyalty.domain

DOMAIN_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(loyalty.domain.__path__, "loyalty.domain.")
)


def imported_after(modules: list[str]) -> set[str]:
    """The top-level packages a fresh interpreter holds after importing `modules`."""
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print('\\n'.join(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_the_domain_imports_without_flask() -> None:
    assert "loyalty.domain.purchases" in DOMAIN_MODULES
    loaded = imported_after(DOMAIN_MODULES)
    assert "loyalty.domain.ledger" in loaded
    web = {m for m in loaded if m.split(".")[0] in {"flask", "flask_smorest", "werkzeug"}}
    assert web == set()
    assert not {m for m in loaded if m.startswith("loyalty.api")}


def test_the_extensions_do_not_import_the_api() -> None:
    loaded = imported_after(["loyalty.extensions"])
    assert "loyalty.extensions" in loaded
    assert not {m for m in loaded if m.startswith("loyalty.api")}
