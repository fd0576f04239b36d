"""Browser: a branch secretary logs in and sees the menu (with and without JavaScript)."""
import pytest

from blueprints.demo.loader import load_demo

from .conftest import browser_login

pytestmark = pytest.mark.browser


def test_secretary_logs_in_and_sees_the_menu(live_server, page_js_and_nojs):
    load_demo(branches=3)
    page = page_js_and_nojs
    browser_login(page, live_server.url, "sec1", "partyday")
    page.goto(live_server.url + "/")
    assert page.get_by_role("heading", name="理论学习").is_visible()
    assert page.get_by_role("button", name="退出").is_visible()
    remaining = page.locator("[data-remaining]").first.get_attribute("data-remaining")
    assert int(remaining) >= 0


def test_filtering_the_menu_updates_results_and_url(live_server, page):
    load_demo(branches=3)
    page.goto(live_server.url + "/")
    page.get_by_label("类别").select_option("volunteer")
    page.wait_for_url("**category=volunteer**")
    headings = page.locator("#results h2").all_inner_texts()
    assert headings and all("志愿服务" in h for h in headings)
