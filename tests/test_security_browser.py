"""Browser: htmx keeps working under the Content-Security-Policy (no inline script, no eval).

Chromium enforces the policy sent by the live server; an init script (injected by Playwright,
outside the page's policy) records every ``securitypolicyviolation`` event, and console errors
are collected too. The menu filter and a booking on the slot page must work through htmx with
neither.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from blueprints.demo.loader import load_demo

from .conftest import browser_login
from .test_booking_browser import HEADCOUNT, _bookable_slot, _fill_booking_form

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


@pytest.fixture
def watched_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    errors: list[str] = []

    def on_console(message):
        # The site has no favicon; the browser's 404 for it is not a policy problem.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.console_errors = errors
    yield page
    context.close()


def _assert_clean(page):
    assert page.evaluate("window.__cspViolations") == []
    assert page.console_errors == []


def test_menu_filter_updates_results_through_htmx_under_the_csp_anonymous(live_server, watched_page):
    load_demo(branches=2, history=False)
    page = watched_page
    response = page.goto(live_server.url + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.evaluate("window.__sameDocument = true")
    with page.expect_request(lambda r: "category=volunteer" in r.url and r.headers.get("hx-request") == "true"):
        page.get_by_label("类别").select_option("volunteer")
    page.wait_for_url("**category=volunteer**")
    expect(page.locator("#results h2").first).to_contain_text("志愿服务")
    headings = page.locator("#results h2").all_inner_texts()
    assert headings and all("志愿服务" in h for h in headings)
    assert page.evaluate("window.__sameDocument") is True, "htmx did not swap; the page reloaded"
    _assert_clean(page)


def test_booking_on_the_slot_page_through_htmx_under_the_csp_secretary(app, live_server, watched_page,
                                                                        monkeypatch):
    monkeypatch.setitem(app.config, "PLACES_POLL_SECONDS", 1)
    load_demo(branches=2, history=False)
    slot_id, before = _bookable_slot()
    page = watched_page
    browser_login(page, live_server.url, "sec1", "partyday")
    page.goto(f"{live_server.url}/slots/{slot_id}")
    page.evaluate("window.__sameDocument = true")
    # The places badge polls without an eval'd trigger filter.
    with page.expect_request(lambda r: r.url.endswith(f"/slots/{slot_id}/places")):
        pass
    _fill_booking_form(page)
    with page.expect_response(lambda r: r.request.method == "POST" and r.request.headers.get("hx-request") == "true"):
        page.locator("#booking-panel button[type=submit]").click()
    expect(page.locator("#booking-panel")).to_contain_text("本支部的预约")
    expect(page.locator("[data-remaining]").first).to_have_attribute("data-remaining", str(before - HEADCOUNT))
    assert page.evaluate("window.__sameDocument") is True, "htmx did not swap; the page reloaded"
    _assert_clean(page)


def test_the_policy_really_blocks_inline_script_control(live_server, watched_page):
    """Control for the tests above: an injected inline script is refused and reported."""
    page = watched_page
    page.goto(live_server.url + "/")
    page.evaluate("""() => {
        const s = document.createElement("script");
        s.textContent = "window.__inlineRan = true";
        document.body.appendChild(s);
    }""")
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.__inlineRan") is None
    assert any(v.startswith("script-src") for v in page.evaluate("window.__cspViolations"))
    assert any("Content Security Policy" in e for e in page.console_errors), page.console_errors
