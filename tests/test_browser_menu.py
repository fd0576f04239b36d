"""Browser: a branch secretary logs in and sees the menu (with and without JavaScript)."""
import pytest

from blueprints.demo.loader import load_demo

from .conftest import browser_login

pytestmark = pytest.mark.browser


def test_secretary_logs_in_and_sees_the_menu(live_server, page_js_and_nojs):
    load_demo(branches=3, history=False)
    page = page_js_and_nojs
    browser_login(page, live_server.url, "sec1", "partyday")
    page.goto(live_server.url + "/")
    assert page.get_by_role("heading", name="理论学习").is_visible()
    page.locator(".nav-menu > summary").click()  # a phone folds the navigation behind 导航
    assert page.get_by_role("button", name="退出").is_visible()
    remaining = page.locator("[data-remaining]").first.get_attribute("data-remaining")
    assert int(remaining) >= 0


def test_filtering_the_menu_updates_results_and_url(live_server, page):
    load_demo(branches=3, history=False)
    page.goto(live_server.url + "/")
    page.get_by_text("筛选", exact=True).click()  # a phone folds the filters behind 筛选
    page.get_by_label("类别").select_option("volunteer")
    page.wait_for_url("**category=volunteer**")
    headings = page.locator("#results h2").all_inner_texts()
    assert headings and all("志愿服务" in h for h in headings)


def test_station_list_follows_the_subdistrict_from_the_keyboard(live_server, page, monkeypatch):
    from blueprints.menu import queries

    from . import factories as f

    monkeypatch.setattr(queries, "STATION_CHOICES_LIMIT", 2)
    qibao = [f.create_station(subdistrict="七宝镇", name=f"七宝驿站{n}") for n in (1, 2)]
    f.create_station(subdistrict="华漕镇", name="华漕驿站")
    page.goto(live_server.url + "/")
    page.get_by_text("筛选", exact=True).click()  # a phone folds the filters behind 筛选
    station = page.get_by_label("站点")
    assert station.locator("option").count() == 1
    assert page.get_by_text("请先选择街镇，再选站点。").is_visible()
    page.get_by_label("街镇").focus()
    page.keyboard.press("ArrowDown")  # the first subdistrict: 七宝镇 (sorted)
    page.wait_for_url("**subdistrict=**")
    station.locator("option").nth(2).wait_for(state="attached")
    assert station.locator("option").all_inner_texts()[1:] == [s.name for s in qibao]
    assert page.evaluate("document.activeElement.id") == "subdistrict"
    station.focus()
    page.keyboard.press("ArrowDown")
    page.wait_for_url(f"**station={qibao[0].id}**")
    assert page.evaluate("document.activeElement.id") == "station"
    assert station.input_value() == str(qibao[0].id)
