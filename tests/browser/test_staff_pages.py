"""The staff back office in a browser, on the demo data `make run` loads (`seed-demo --history`):
sign in, find a member by card, adjust with a reason and see the new balance and the audit
entry; a reports account cannot reach the member pages; the dashboard draws its charts; a form
posted without its CSRF token is refused; a screenshot of every page; no serious accessibility
violation."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.browser.conftest import BIN, ROOT, Live, assert_accessible, served

CHLOE_CARD = "9900000000000002"  # the demo's Chloé, 1,000 points
REPORTS_PASSWORD = "reports account password"


@dataclass
class Demo:
    live: Live
    staff_email: str
    staff_password: str


@pytest.fixture(scope="module")
def demo(new_database: Callable[[str], AbstractContextManager[str]]) -> Iterator[Demo]:
    """gunicorn on a fresh database loaded by `seed-demo --history` (as `make run` does), with a
    `reports` account besides the demo's admin."""
    seeded: dict[str, str] = {}

    def seed(live: Live) -> None:
        out = live.flask("loyalty", "seed-demo", "--history", "--url", live.base_url)
        found = re.search(r"sign in as (\S+) \(admin\), password: (\S+)", out)
        assert found, out
        seeded.update(email=found.group(1), password=found.group(2))
        live.admin_key = out.splitlines()[-1].split()[-1]
        subprocess.run(
            [str(BIN / "flask"), "loyalty", "create-staff", "reports@example.com", "--role",
             "reports", "--name", "Rita", "--password-stdin"],
            input=REPORTS_PASSWORD + "\n", cwd=ROOT, env=live.env, text=True, check=True,
            capture_output=True, timeout=120,
        )  # fmt: skip

    with served(new_database, "loyalty-staff", seed) as live:
        yield Demo(live, seeded["email"], seeded["password"])


def sign_in(page: Any, demo: Demo, email: str, password: str) -> None:
    page.goto(demo.live.url("/staff/sign-in"))
    page.fill("#email", email)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def test_find_a_member_by_card_adjust_and_see_the_balance_and_the_audit_entry(
    demo: Demo, tablet: Any, screenshot: Any
) -> None:
    tablet.goto(demo.live.url("/staff/sign-in"))
    assert_accessible(tablet)
    screenshot(tablet, "staff-sign-in")
    sign_in(tablet, demo, demo.staff_email, demo.staff_password)
    assert tablet.url.endswith("/staff/members")
    screenshot(tablet, "staff-search")

    tablet.fill("#term", CHLOE_CARD)  # as a scanner types it
    tablet.get_by_role("button", name="Search").click()
    tablet.wait_for_url(re.compile(r"/staff/members/\d+$"))
    assert tablet.locator("h1").inner_text().startswith("Chloé Demo")
    assert tablet.locator("#balance-points").inner_text() == "1000"
    assert_accessible(tablet)
    screenshot(tablet, "staff-member")

    tablet.fill("#points", "50")
    tablet.fill("#reason", "stamp card from before the programme")
    tablet.get_by_role("button", name="Adjust", exact=True).click()
    tablet.wait_for_load_state()
    assert tablet.locator("#balance-points").inner_text() == "1050"
    assert "the balance is now 1050" in tablet.locator("[role=status]").inner_text()
    ledger_top = tablet.locator("#ledger tbody tr").first.inner_text()
    assert "+50" in ledger_top and "1050" in ledger_top and "Sam" in ledger_top
    audit_top = tablet.locator("#audit tbody tr").first.inner_text()
    assert "points.adjust" in audit_top and "stamp card" in audit_top and "Sam" in audit_top
    screenshot(tablet, "staff-member-adjusted")

    # the same through the API: the audit log names the staff member
    status, entries = demo.live.api("GET", "/api/v1/audit-entries?action=points.adjust")
    assert status == 200 and entries[0]["actor"] == "Sam"
    assert entries[0]["reason"] == "stamp card from before the programme"


def test_a_reports_account_cannot_reach_the_member_pages(
    demo: Demo, laptop: Any, screenshot: Any
) -> None:
    sign_in(laptop, demo, "reports@example.com", REPORTS_PASSWORD)
    assert laptop.url.endswith("/staff/dashboard")
    nav = laptop.locator("nav.staff-nav").inner_text()
    assert "Dashboard" in nav and "Members" not in nav and "Rita (reports)" in nav
    for path in ("/staff/members", "/staff/members/3", "/staff/feedback", "/staff/program"):
        response = laptop.goto(demo.live.url(path))
        assert response.status == 403, path
    assert "Chloé" not in laptop.content()
    screenshot(laptop, "staff-reports-forbidden")


def test_the_dashboard_draws_its_charts_from_the_demo_data(
    demo: Demo, laptop: Any, tablet: Any, screenshot: Any
) -> None:
    for page, name in ((laptop, "staff-dashboard"), (tablet, "staff-dashboard-tablet")):
        sign_in(page, demo, demo.staff_email, demo.staff_password)
        page.goto(demo.live.url("/staff/dashboard"))
        charts = page.locator("svg.chart")
        assert charts.count() == 8
        for i in range(8):
            box = charts.nth(i).bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 40
        retention = charts.nth(0)
        assert retention.locator("circle").count() >= 20  # two lines over 12 months
        assert charts.nth(2).locator("rect").count() >= 10  # the cohort matrix's cells
        assert charts.nth(7).locator("circle").count() >= 1  # the come-back uplift
        assert page.locator("figure svg title").count() >= 8
        assert_accessible(page)
        screenshot(page, name)


def test_every_page_of_an_admin(demo: Demo, laptop: Any, screenshot: Any) -> None:
    sign_in(laptop, demo, demo.staff_email, demo.staff_password)
    laptop.goto(demo.live.url("/staff/feedback"))
    first = laptop.locator("article.answer").first
    assert first.locator(".badge").count() >= 1  # a detractor or high effort comes first
    screenshot(laptop, "staff-feedback-inbox")
    first.get_by_role("button", name="Issue goodwill voucher").click()
    laptop.wait_for_url(re.compile(r"/staff/feedback$"))
    assert "Goodwill voucher" in laptop.locator("[role=status]").inner_text()
    for path, name in (
        ("/staff/program", "staff-program"),
        ("/staff/rewards", "staff-rewards"),
        ("/staff/members/3/edit", "staff-edit"),
        ("/staff/members/3/erase", "staff-erase"),
    ):
        assert laptop.goto(demo.live.url(path)).status == 200, path
        assert_accessible(laptop)
        screenshot(laptop, name)
    laptop.goto(demo.live.url("/staff/members/3/edit"))
    laptop.fill("#phone", "+61491570157")
    laptop.get_by_role("button", name="Review changes").click()
    assert "Confirm these changes" in laptop.content()
    screenshot(laptop, "staff-edit-confirm")
    laptop.get_by_role("button", name="Confirm and save").click()
    laptop.wait_for_url(re.compile(r"/staff/members/3$"))
    assert "+61491570157" in laptop.locator(".member-head").inner_text()


def test_a_form_posted_without_its_csrf_token_is_refused(demo: Demo, laptop: Any) -> None:
    sign_in(laptop, demo, demo.staff_email, demo.staff_password)
    laptop.goto(demo.live.url("/staff/members/3"))
    before = laptop.locator("#balance-points").inner_text()
    # the browser's own cookies, a form post without the token
    response = laptop.request.post(
        demo.live.url("/staff/members/3/adjust"), form={"points": "5", "reason": "forged"}
    )
    assert response.status == 400
    laptop.reload()
    assert laptop.locator("#balance-points").inner_text() == before
