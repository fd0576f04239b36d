"""The header and the menu's first screen on a phone (issue 14), in the browser at 390×844, and the
folded filter panel and the cards' "更多场次" at request level."""
from datetime import timedelta

import pytest

from blueprints.accounts.models import User
from blueprints.booking.models import Notification
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.demo.loader import load_demo

from . import factories as f
from .cache_support import MODES, use_cache
from .conftest import browser_login

PHONE = {"width": 390, "height": 844}

# What each role's header offers, by language: links, then buttons.
HEADER = {
    ("anon", "zh_CN"): (["主题党日服务菜单", "登录"], ["English"]),
    ("anon", "en"): (["Party-day menu", "Log in"], ["中文"]),
    ("sec1", "zh_CN"): (["服务菜单", "我的预约", "日历订阅", "消息"], ["退出", "English"]),
    ("sec1", "en"): (["Menu", "My bookings", "Calendar", "Messages"], ["Log out", "中文"]),
    ("host1", "zh_CN"): (["服务菜单", "我的站点", "预约审核", "统计", "日历订阅", "消息"], ["退出", "English"]),
    ("host1", "en"): (["Menu", "My stations", "Approvals", "Statistics", "Calendar", "Messages"], ["Log out", "中文"]),
    ("admin", "zh_CN"): (["服务菜单", "区级管理", "统计", "组织名录", "账号", "消息"], ["退出", "English"]),
    ("admin", "en"): (["Menu", "District administration", "Statistics", "Organisation directory", "Accounts", "Messages"],
                      ["Log out", "中文"]),
}


@pytest.fixture(params=MODES)
def cache_mode(request, app, monkeypatch):
    use_cache(app, monkeypatch, request.param)
    return request.param


@pytest.fixture
def phone(browser, request):
    javascript = getattr(request, "param", True)
    context = browser.new_context(java_script_enabled=javascript, viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def open_navigation(page) -> None:
    """Open the folded navigation if this width folds it (its 导航 button is shown)."""
    summary = page.locator(".nav-menu > summary")
    if summary.is_visible():
        summary.click()
        assert page.locator(".nav-menu").get_attribute("open") is not None


def assert_in_viewport(page, locator, what: str) -> None:
    assert locator.is_visible(), f"{what} is not visible"
    box = locator.bounding_box()
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, f"{what} is cut off sideways: {box}"
    assert box["y"] >= 0 and box["y"] + box["height"] <= height, f"{what} is below the screen: {box}"


def switch_language(page, lang: str) -> None:
    if lang == "en":
        open_navigation(page)
        page.get_by_role("button", name="English").click()
        page.wait_for_url("**/")
        page.locator("button[name=lang][value=zh_CN]").wait_for(state="attached")
        page.goto(page.url)


@pytest.mark.browser
@pytest.mark.parametrize("phone", [True, False], ids=["js", "nojs"], indirect=True)
@pytest.mark.parametrize("user,lang", list(HEADER))
def test_every_header_item_is_reachable_on_a_phone(live_server, phone, user, lang):
    load_demo(branches=3, history=False)
    if user != "anon":
        account = db.session.scalar(db.select(User).filter_by(username=user))
        db.session.add(Notification(user_id=account.id, kind="booking_confirmed", params={}))
        db.session.commit()
        browser_login(phone, live_server.url, user, "partyday")
    phone.goto(live_server.url + "/")
    switch_language(phone, lang)
    header = phone.locator(".site-header")
    assert header.bounding_box()["height"] <= 72, "the header takes more than one compact row"
    if user != "anon":  # the folded button shows that there is something unread
        dot = phone.evaluate("getComputedStyle(document.querySelector('.nav-menu > summary'), '::after').content")
        assert dot not in ("none", "normal")
    open_navigation(phone)
    links, buttons = HEADER[(user, lang)]
    for name in links:
        assert_in_viewport(phone, header.get_by_role("link", name=name, exact=name != "消息" and name != "Messages"), name)
    for name in buttons:
        assert_in_viewport(phone, header.get_by_role("button", name=name, exact=True), name)
    if user != "anon":
        assert_in_viewport(phone, header.locator("#unread-badge"), "unread badge")
        assert int(header.locator("#unread-badge").inner_text()) >= 1
    # nothing else in the header is hidden, and the page does not scroll sideways
    for item in header.locator("a:visible, button:visible, summary:visible").all():
        assert_in_viewport(phone, item, item.inner_text())
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


@pytest.mark.browser
def test_the_navigation_button_works_from_the_keyboard(live_server, phone):
    load_demo(branches=3, history=False)
    browser_login(phone, live_server.url, "host1", "partyday")
    phone.goto(live_server.url + "/")
    summary = phone.locator(".nav-menu > summary")
    assert summary.get_attribute("aria-expanded") is None  # the <details> state is native
    assert not phone.get_by_role("link", name="预约审核").is_visible()
    summary.focus()
    assert phone.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    phone.keyboard.press("Enter")
    assert phone.get_by_role("link", name="预约审核").is_visible()
    phone.keyboard.press("Tab")
    assert phone.evaluate("document.activeElement.textContent.trim()") == "服务菜单"


@pytest.mark.browser
@pytest.mark.parametrize("user,lang", [("anon", "zh_CN"), ("anon", "en"), ("sec1", "zh_CN"), ("host1", "en")])
def test_the_first_package_is_on_the_first_screen(live_server, phone, user, lang):
    load_demo(branches=3, history=False)
    if user != "anon":
        browser_login(phone, live_server.url, user, "partyday")
    phone.goto(live_server.url + "/")
    switch_language(phone, lang)
    phone.goto(live_server.url + "/")
    card = phone.locator(".card").first
    assert card.bounding_box()["y"] < PHONE["height"] - 100, "the first package is not on the first screen"
    assert card.locator("[data-slot-id]").count() <= 3


@pytest.mark.browser
@pytest.mark.parametrize("phone", [False], ids=["nojs"], indirect=True)
def test_the_filter_control_opens_without_javascript(live_server, phone):
    load_demo(branches=3, history=False)
    phone.goto(live_server.url + "/")
    category = phone.get_by_label("类别")
    assert not category.is_visible()
    phone.get_by_text("筛选", exact=True).click()
    assert category.is_visible()
    category.select_option("volunteer")
    phone.get_by_role("button", name="查看服务包").click()
    phone.wait_for_url("**category=volunteer**")
    assert phone.locator("#filters").get_attribute("open") is not None  # open: a filter is set
    assert phone.get_by_label("类别").input_value() == "volunteer"
    assert phone.locator("#filter-count").inner_text() == "已选 1 项"
    phone.get_by_role("link", name="清除筛选").click()
    phone.wait_for_url(live_server.url + "/")
    assert phone.locator("#filters").get_attribute("open") is None


@pytest.mark.browser
def test_filtering_with_javascript_keeps_the_panel_open_and_counts(live_server, phone):
    load_demo(branches=3, history=False)
    phone.goto(live_server.url + "/?available=y")
    assert phone.get_by_label("类别").is_visible()  # open: a filter is set
    phone.get_by_label("类别").select_option("theory")
    phone.wait_for_url("**category=theory**")
    phone.locator("#filter-count", has_text="已选 2 项").wait_for()
    assert phone.get_by_label("类别").is_visible()


# Request level: the folded panel's state and count follow the query (part of the cache keys).

def test_the_filter_panel_is_open_exactly_when_a_filter_is_set(client, cache_mode, htmx_headers):
    f.create_slot()
    closed = client.get("/").get_data(as_text=True)
    assert '<details class="panel filters-fold" id="filters">' in closed
    assert client.get("/?page=1").get_data(as_text=True).count('id="filters" open') == 0
    opened = client.get("/?category=theory").get_data(as_text=True)
    assert 'id="filters" open' in opened and "已选 1 项" in opened
    assert 'id="filters" open' not in client.get("/").get_data(as_text=True)  # the cache keeps them apart
    assert 'id="filters" open' in client.get("/?category=nonsense").get_data(as_text=True)  # errors show
    fragment = client.get("/?category=theory&available=y", headers=htmx_headers).get_data(as_text=True)
    assert "<html" not in fragment
    assert '<span id="filter-count" class="filter-count" hx-swap-oob="true">已选 2 项</span>' in fragment
    cleared = client.get("/", headers=htmx_headers).get_data(as_text=True)
    assert '<span id="filter-count" class="filter-count" hx-swap-oob="true"></span>' in cleared


def test_a_card_lists_three_slots_and_links_to_the_rest(client, cache_mode):
    station = f.create_station()
    many = f.create_package(title="四史微党课", stations=[station])
    few = f.create_package(title="垃圾分类志愿服务", stations=[station])
    slots = [f.create_slot(package=many, station=station, starts_at=clock.now() + timedelta(days=d + 1))
             for d in range(4)]
    f.create_slot(package=few, station=station)
    html = client.get("/").get_data(as_text=True)
    for slot in slots[:3]:
        assert f'data-slot-id="{slot.id}"' in html
    assert f'data-slot-id="{slots[3].id}"' not in html
    assert html.count("更多场次") == 1 and f'href="/packages/{many.id}">更多场次' in html
    slots[3].status = type(slots[3].status).CANCELLED
    db.session.commit()
    assert "更多场次" not in client.get("/").get_data(as_text=True)  # the card's key names it
