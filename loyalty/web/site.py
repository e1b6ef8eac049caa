"""What every page uses: the stylesheet and scripts (ours, and htmx from npm), the language
switch."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, redirect, request, send_from_directory, session

from loyalty.web.base import LANGUAGE_KEY, LANGUAGES, WEB_DIR, PageBlueprint

bp = PageBlueprint(
    "site", __name__, static_folder=str(WEB_DIR / "static"), static_url_path="/static/site"
)

#: The files of pinned npm packages (package-lock.json) the pages use, served from
#: LOYALTY_NODE_MODULES_DIR: name in /static/vendor/ → path under node_modules.
VENDOR_FILES = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
}


@bp.route("/static/vendor/<name>")
def vendor(name: str) -> Any:
    """A file of a pinned npm package (installed by `make node`, never fetched at run time)."""
    path = VENDOR_FILES.get(name)
    if path is None:
        abort(404)
    folder = Path(current_app.config["LOYALTY_NODE_MODULES_DIR"]) / Path(path).parent
    return send_from_directory(folder, Path(path).name, max_age=3600)


@bp.post("/language")
def language() -> Any:
    """The language switch: remembered in the session; back to the page it was on."""
    chosen = request.form.get("lang", "")
    if chosen in LANGUAGES:
        session[LANGUAGE_KEY] = chosen
    return redirect(_local(request.form.get("next", "")), code=303)


def _local(target: str, default: str = "/") -> str:
    """`target` if it is a path on this site, else `default` (no open redirect). Read as a
    browser would: it drops tabs and line breaks (`/<tab>/evil.example` is `//evil.example`) and
    reads a backslash as a slash; a control character is refused outright (none belongs in a
    path, and a line break cannot go into a Location header)."""
    if any(ch < " " or ch == "\x7f" for ch in target):
        return default
    seen = target.replace("\\", "/")
    parts = urlsplit(seen)
    if parts.scheme or parts.netloc or not seen.startswith("/") or seen.startswith("//"):
        return default
    return target
