"""Browser tests: headless Chromium (Debian's `chromium`, driven by Playwright for Python; no
browser is ever downloaded) against gunicorn on a throw-away database of the pass's backend.

Fixtures:
- `live`: the server (session-wide): `live.url("/f/…")`, `live.api("POST", "/api/v1/…", body)`
  with an admin API key (`key=live.pos_key` for a till's; returns status and JSON),
  `live.flask("loyalty", "create-staff", …)` runs the CLI on the server's database.
- `phone`, `tablet`, `laptop`: a fresh page in a context of that size (each test its own
  cookies); `browser` for anything else.
- `screenshot(page, "name")` writes tests/browser/screenshots/name.png (git-ignored).
- `axe(page)` runs axe-core (node_modules/axe-core) on the page and returns its violations;
  `assert_accessible(page)` fails on a serious or critical one.

Every test here is marked `e2e` (run once, on the PostgreSQL pass of `make test`). Without a
Chromium the tests are skipped with the reason said loudly; under CI (CI=true) that is a failure
(.ci/run installs Debian's chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loyalty.ratelimits import SETTINGS as RATE_LIMIT_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
TABLET = {"viewport": {"width": 820, "height": 1180}, "is_mobile": True, "has_touch": True}
LAPTOP = {"viewport": {"width": 1366, "height": 800}}


def pytest_itemcollected(item: pytest.Item) -> None:
    """Everything under tests/browser starts gunicorn and a browser: marked e2e."""
    if Path(str(item.path)).is_relative_to(Path(__file__).parent):
        item.add_marker(pytest.mark.e2e)


def chromium_path() -> str | None:
    """LOYALTY_CHROMIUM, else Debian's chromium on PATH."""
    found = os.environ.get("LOYALTY_CHROMIUM") or shutil.which("chromium")
    return found if found and os.access(found, os.X_OK) else None


def _no_browser(reason: str) -> None:
    message = f"NO BROWSER: {reason}. The browser tests did NOT run (apt-get install chromium)."
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    print(f"\n!! {message}", file=sys.stderr)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    """The running server: its address, environment, an admin and a pos API key."""

    base_url: str
    env: dict[str, str]
    log_path: Path
    admin_key: str = ""
    pos_key: str = ""

    def url(self, path: str) -> str:
        return self.base_url + path

    def flask(self, *args: str) -> str:
        """`flask <args>` on the server's database; its standard output (fails the test on an
        error)."""
        proc = subprocess.run(
            [str(BIN / "flask"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def api(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> tuple[int, Any]:
        """An API call with the admin key (or `key`): status and parsed JSON (None if empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url(path), data=data, method=method)
        request.add_header("Authorization", f"Bearer {key or self.admin_key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        return status, (json.loads(raw) if raw else None)

    def server_log(self) -> str:
        return self.log_path.read_text()


def _wait_ready(base: str, log_path: Path) -> None:
    for _ in range(150):
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail("gunicorn did not become ready:\n" + log_path.read_text())


@contextmanager
def served(
    new_database: Callable[[str], AbstractContextManager[str]],
    prefix: str,
    prepare: Callable[[Live], None],
) -> Iterator[Live]:
    """gunicorn on a free loopback port and a fresh database, migrated, then `prepare(live)`
    (keys, demo data, ...) before the server starts; no traceback in its log at the end."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        env = {
            **os.environ,
            "DATABASE_URL": stack.enter_context(new_database(prefix.replace("-", "_"))),
            "FLASK_APP": "wsgi",
            "LOYALTY_PUBLIC_URL": base,
            "LOYALTY_JOBS_FILE": str(tmp / "jobs.sqlite3"),
            "LOYALTY_JOBS_IMMEDIATE": "1",
            **dict.fromkeys(RATE_LIMIT_SETTINGS, "1000000/minute"),
        }
        live = Live(base, env, tmp / "gunicorn.log")
        live.flask("db", "upgrade")
        prepare(live)
        log = stack.enter_context(open(live.log_path, "w"))
        server = subprocess.Popen(
            [str(BIN / "gunicorn"), "--workers", "1", "--threads", "4", "--bind",
             f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_ready(base, live.log_path)
            yield live
        finally:
            server.terminate()
            server.wait(timeout=30)
        assert "Traceback" not in live.server_log(), live.server_log()[-6000:]


@pytest.fixture(scope="session")
def live(new_database: Callable[[str], AbstractContextManager[str]]) -> Iterator[Live]:
    """gunicorn on a free loopback port and a fresh database (migrated, an admin key made)."""

    def keys(live: Live) -> None:
        live.admin_key, live.pos_key = (
            live.flask("loyalty", "create-api-key", f"browser-{s}", "--scope", s).split()[-1]
            for s in ("admin", "pos")
        )

    with served(new_database, "loyalty-browser", keys) as live:
        yield live


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), one for the session."""
    executable = chromium_path()
    if executable is None:
        _no_browser("no chromium found (set LOYALTY_CHROMIUM or install Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("Playwright for Python is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, headless=True)
        except Exception as exc:
            _no_browser(f"{executable} did not start: {exc}")
        yield browser
        browser.close()


def _page(browser: Any, options: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(**options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A page 390×844 (a phone), in its own context (cookies)."""
    yield from _page(browser, PHONE)


@pytest.fixture
def tablet(browser: Any) -> Iterator[Any]:
    yield from _page(browser, TABLET)


@pytest.fixture
def laptop(browser: Any) -> Iterator[Any]:
    yield from _page(browser, LAPTOP)


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """`screenshot(page, "feedback-thanks")`: the full page as a PNG a person can look at."""

    def take(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def axe(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is (the page's CSP does not apply to scripts
    the test evaluates)."""
    assert AXE.exists(), "axe-core is not installed: run `make node`"
    page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document)")
    return list(result["violations"])


def assert_accessible(page: Any) -> None:
    """No serious or critical axe-core violation on the page."""
    bad = [v for v in axe(page) if v.get("impact") in ("serious", "critical")]
    assert not bad, json.dumps(
        [{k: v[k] for k in ("id", "impact", "help")} | {"nodes": len(v["nodes"])} for v in bad],
        indent=2,
    )
