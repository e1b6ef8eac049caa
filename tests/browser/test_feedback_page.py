"""The customer's feedback page in a phone's browser: answer once, see the thank-you, come back
and see it answered; a post without the form's CSRF token is refused; no serious accessibility
violation."""

from __future__ import annotations

import itertools
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Live, assert_accessible

_receipts = itertools.count(1)


def _purchase(live: Live) -> dict[str, Any]:
    status, member = live.api("POST", "/api/v1/members", {"name": "Eva"}, key=live.pos_key)
    assert status == 201, member
    body = {
        "external_id": f"browser-{next(_receipts)}",
        "member_id": member["id"],
        "amount": 2500,
        "currency": "EUR",
    }
    status, purchase = live.api("POST", "/api/v1/purchases", body, key=live.pos_key)
    assert status == 201, purchase
    return purchase


def test_answer_on_a_phone_then_see_it_answered(live: Live, phone: Any, screenshot: Any) -> None:
    purchase = _purchase(live)
    assert purchase["feedback_url"] == live.url(f"/f/{purchase['feedback_token']}")
    refused: list[str] = []  # what the page's CSP blocked (an inline style, say): nothing
    phone.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else 0)
    phone.goto(purchase["feedback_url"])
    assert phone.locator("h1").inner_text() == "How was your visit?"
    assert_accessible(phone)
    screenshot(phone, "feedback-form-phone")

    phone.locator("input[name=nps][value='9']").check()
    phone.locator("input[name=ces][value='2']").check()
    phone.locator("input[name=csat][value='5']").check()
    phone.fill("#comment", "Quick and friendly.")
    phone.get_by_role("button", name="Send my answers").click()
    # the form posts to its own address: wait for the thank-you itself, not for the URL
    expect(phone.locator("h1")).to_have_text("Thank you!")
    assert "have been received" in phone.locator("main").inner_text()
    screenshot(phone, "feedback-thanks-phone")

    phone.goto(purchase["feedback_url"])  # again, later: answered, nothing to send
    assert "answered already" in phone.locator("main").inner_text()
    assert phone.locator("main form").count() == 0
    assert_accessible(phone)
    screenshot(phone, "feedback-answered-phone")
    assert refused == []


def test_the_page_in_dutch_and_the_switch_remembers(live: Live, browser: Any, screenshot) -> None:
    purchase = _purchase(live)
    context = browser.new_context(
        locale="nl-NL", viewport={"width": 390, "height": 844}, is_mobile=True
    )
    page = context.new_page()
    try:
        page.goto(purchase["feedback_url"])
        assert page.locator("h1").inner_text() == "Hoe was uw bezoek?"
        assert page.locator("html").get_attribute("lang") == "nl"
        screenshot(page, "feedback-form-phone-nl")
        page.get_by_role("button", name="English").click()
        expect(page.locator("h1")).to_have_text("How was your visit?")
        assert page.locator("html").get_attribute("lang") == "en"
        page.goto(purchase["feedback_url"])  # the choice is kept over the browser's
        assert page.locator("h1").inner_text() == "How was your visit?"
    finally:
        context.close()


def test_a_post_without_the_csrf_token_is_refused(live: Live, phone: Any) -> None:
    purchase = _purchase(live)
    phone.goto(purchase["feedback_url"])
    phone.evaluate("document.querySelector('main input[name=csrf_token]').remove()")
    phone.locator("input[name=nps][value='3']").check()
    with phone.expect_response(purchase["feedback_url"]) as answer:
        phone.get_by_role("button", name="Send my answers").click()
    assert answer.value.status == 400
    assert "did not come from this site" in phone.locator("main").inner_text()
    phone.goto(purchase["feedback_url"])  # nothing was recorded: the questions are still there
    assert phone.locator("main form").count() == 1


def test_the_page_reads_well_on_a_laptop(live: Live, laptop: Any, screenshot: Any) -> None:
    purchase = _purchase(live)
    laptop.goto(purchase["feedback_url"])
    width = laptop.evaluate("document.querySelector('main').getBoundingClientRect().width")
    assert width <= 40 * 16 + 1  # one readable column, not stretched over the screen
    assert_accessible(laptop)
    screenshot(laptop, "feedback-form-laptop")


def test_a_link_nobody_made_says_so(live: Live, phone: Any, screenshot: Any) -> None:
    response = phone.goto(live.url("/f/MQ.not-a-signature"))
    assert response is not None and response.status == 404
    assert "not valid" in phone.locator("main").inner_text()
    assert_accessible(phone)
    screenshot(phone, "feedback-invalid-link-phone")


def test_the_page_works_without_javascript(live: Live, browser: Any) -> None:
    purchase = _purchase(live)
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(purchase["feedback_url"])
        page.locator("input[name=nps][value='4']").check()
        page.fill("#comment", "The queue was long.")
        page.get_by_role("button", name="Send my answers").click()
        expect(page.locator("h1")).to_have_text("Thank you!")
    finally:
        context.close()
