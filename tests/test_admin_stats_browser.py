"""/admin/stats in the browser with the demo district (past quarter included): on a phone the page
never scrolls sideways, each table scrolls inside a region the keyboard can reach, and axe-core
finds no violation at 390×844 or 1280×800."""
from pathlib import Path

import pytest

from blueprints.demo.loader import load_demo

from .conftest import browser_login

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}

RUN_AXE = """async () => {
  const results = await axe.run(document, {resultTypes: ['violations']});
  return results.violations.map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', '));
}"""


@pytest.fixture
def admin_page(browser, live_server, request):
    load_demo(branches=12)
    context = browser.new_context(viewport=request.param, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    browser_login(page, live_server.url, "admin", "partyday")
    page.goto(live_server.url + "/admin/stats")
    yield page
    context.close()


@pytest.mark.parametrize("admin_page", [PHONE], ids=["phone"], indirect=True)
def test_stats_tables_scroll_in_focusable_regions_on_a_phone_admin(admin_page):
    page = admin_page
    regions = page.locator(".table-scroll")
    assert regions.count() == 5
    for i in range(regions.count()):
        region = regions.nth(i)
        assert region.get_attribute("tabindex") == "0" and region.get_attribute("role") == "region"
        assert region.get_attribute("aria-label").endswith("（表格）")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    stations = page.locator(".table-scroll:has(#table-stations)")
    scroll_width, client_width = stations.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert scroll_width > client_width  # the table is wider than the phone: it scrolls in its region
    stations.focus()
    assert page.evaluate("document.activeElement.contains(document.getElementById('table-stations'))")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("End")
    page.wait_for_function("document.activeElement.scrollLeft > 0")
    # The charts fit the screen too.
    for box in (c.bounding_box() for c in page.locator("svg.chart").all()):
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]


@pytest.mark.parametrize("admin_page", [PHONE, DESKTOP], ids=["phone", "desktop"], indirect=True)
def test_stats_page_has_no_axe_violation_admin(admin_page):
    page = admin_page
    assert page.locator("svg.chart").count() == 5
    page.add_script_tag(path=str(AXE))
    assert page.evaluate(RUN_AXE) == []
