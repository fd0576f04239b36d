"""The menu page `/`: full page and htmx fragment, filters, places left, bounded queries."""
import re
from datetime import timedelta

import pytest

from blueprints.booking.models import BookingStatus
from blueprints.catalog.models import Category, SlotStatus
from blueprints.core import clock
from blueprints.menu import queries

from . import factories as f


def test_menu_groups_packages_by_category_in_menu_order(client):
    f.create_slot(package=f.create_package(title="志愿包", category=Category.VOLUNTEER))
    f.create_slot(package=f.create_package(title="理论包", category=Category.THEORY))
    f.create_slot(package=f.create_package(title="实践包", category=Category.PRACTICE))
    html = client.get("/").get_data(as_text=True)
    assert html.index("理论学习") < html.index("党性实践") < html.index("志愿服务")
    assert html.index("理论包") < html.index("实践包") < html.index("志愿包")


def test_menu_shows_places_left_counted_from_active_bookings(client):
    slot = f.create_slot(capacity=20)
    f.create_booking(slot=slot, headcount=7)
    f.create_booking(slot=slot, headcount=3, status=BookingStatus.PENDING)
    f.create_booking(slot=slot, headcount=5, status=BookingStatus.CANCELLED)
    f.create_booking(slot=slot, headcount=4, status=BookingStatus.WAITLISTED)
    html = client.get("/").get_data(as_text=True)
    assert 'data-remaining="10"' in html
    assert "剩余 10 / 20 个名额" in html


def test_full_slot_says_full(client):
    slot = f.create_slot(capacity=10)
    f.create_booking(slot=slot, headcount=10)
    html = client.get("/").get_data(as_text=True)
    assert 'data-remaining="0"' in html and "已约满" in html


def test_group_limit_reached_counts_as_full(client):
    slot = f.create_slot(capacity=50, max_groups=1)
    f.create_booking(slot=slot, headcount=5)
    assert 'data-remaining="0"' in client.get("/").get_data(as_text=True)


def test_past_cancelled_and_closed_slots_are_not_listed(client):
    package = f.create_package(title="只有旧场次")
    f.create_slot(package=package, starts_at=clock.now() - timedelta(days=1))
    f.create_slot(package=package, status=SlotStatus.CANCELLED)
    f.create_slot(package=package, status=SlotStatus.CLOSED)
    html = client.get("/").get_data(as_text=True)
    assert "只有旧场次" in html and "暂无近期场次" in html


def test_inactive_packages_are_hidden(client):
    f.create_slot(package=f.create_package(title="已下架的包", active=False))
    assert "已下架的包" not in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("query,expected,unexpected", [
    ("category=practice", "实践包", "理论包"),
    ("q=理论", "理论包", "实践包"),
    ("available=y", "理论包", "实践包"),
])
def test_filters_narrow_the_packages(client, query, expected, unexpected):
    theory = f.create_slot(package=f.create_package(title="理论包", category=Category.THEORY), capacity=10)
    practice = f.create_slot(package=f.create_package(title="实践包", category=Category.PRACTICE), capacity=10)
    f.create_booking(slot=practice, headcount=10)
    if query.startswith("category"):
        expected, unexpected = "实践包", "理论包"
    html = client.get(f"/?{query}").get_data(as_text=True)
    results = html[html.index('id="results"'):]
    assert expected in results and unexpected not in results
    assert theory.id


def test_station_subdistrict_and_date_filters(client):
    near = f.create_station(subdistrict="七宝镇")
    far = f.create_station(subdistrict="华漕镇")
    f.create_slot(package=f.create_package(title="七宝的包", stations=[near]), starts_at=clock.now() + timedelta(days=3))
    f.create_slot(package=f.create_package(title="华漕的包", stations=[far]), starts_at=clock.now() + timedelta(days=20))
    by_station = client.get(f"/?station={near.id}").get_data(as_text=True)
    assert "七宝的包" in by_station and "华漕的包" not in by_station
    by_subdistrict = client.get("/?subdistrict=华漕镇").get_data(as_text=True)
    assert "华漕的包" in by_subdistrict and "七宝的包" not in by_subdistrict
    until = (clock.today() + timedelta(days=10)).isoformat()
    by_date = client.get(f"/?date_to={until}").get_data(as_text=True)
    assert "七宝的包" in by_date and "华漕的包" not in by_date


def _station_options(html: str) -> list[str]:
    select = re.search(r'<select[^>]*name="station"[^>]*>(.*?)</select>', html, re.S).group(1)
    return re.findall(r'<option value="(\d+)"', select)


def test_station_filter_lists_every_station_while_there_are_few(client):
    stations = [f.create_station(subdistrict=s) for s in ("七宝镇", "华漕镇")]
    html = client.get("/").get_data(as_text=True)
    assert _station_options(html) == [str(s.id) for s in stations]
    assert "请先选择街镇" not in html


def test_station_filter_waits_for_a_subdistrict_when_a_city_has_many_stations(client, monkeypatch):
    monkeypatch.setattr(queries, "STATION_CHOICES_LIMIT", 2)
    qibao = [f.create_station(subdistrict="七宝镇") for _ in range(2)]
    huacao = f.create_station(subdistrict="华漕镇")
    html = client.get("/").get_data(as_text=True)
    assert _station_options(html) == []
    assert "请先选择街镇，再选站点。" in html
    assert 'aria-describedby="station-hint"' in html
    in_qibao = client.get("/?subdistrict=七宝镇").get_data(as_text=True)
    assert _station_options(in_qibao) == [str(s.id) for s in qibao]


def test_a_chosen_station_stays_selectable_beyond_the_list(client, monkeypatch):
    monkeypatch.setattr(queries, "STATION_CHOICES_LIMIT", 1)
    f.create_station(subdistrict="七宝镇")
    chosen = f.create_station(subdistrict="华漕镇", name="华漕驿站")
    f.create_slot(package=f.create_package(title="华漕的包", stations=[chosen]), station=chosen)
    response = client.get(f"/?station={chosen.id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert _station_options(html) == [str(chosen.id)] and "华漕的包" in html
    elsewhere = client.get(f"/?station={chosen.id}&subdistrict=七宝镇")
    assert elsewhere.status_code == 200 and str(chosen.id) in _station_options(elsewhere.get_data(as_text=True))


def test_htmx_filter_change_refreshes_the_station_list_out_of_band(client, htmx_headers):
    qibao = f.create_station(subdistrict="七宝镇")
    f.create_station(subdistrict="华漕镇")
    html = client.get("/?subdistrict=七宝镇", headers=htmx_headers).get_data(as_text=True)
    assert html.lstrip().startswith('<div id="results"')
    oob = html[html.index('id="station-filter"') - 5:]
    assert 'hx-swap-oob="true"' in oob
    assert _station_options(oob) == [str(qibao.id)]
    full = client.get("/?subdistrict=七宝镇").get_data(as_text=True)
    assert full.count('id="station-filter"') == 1 and "hx-swap-oob" not in full


@pytest.mark.parametrize("query,message", [
    ("date_from=2026-13-45", "不是有效的日期值"),
    ("date_from=2026-12-10&date_to=2026-12-01", "结束日期早于开始日期"),
    ("category=nonsense", "不是有效的选择"),
    ("station=abc", "选择无效"),
])
def test_bad_filters_get_a_clear_message_not_an_error(client, query, message):
    f.create_slot()
    response = client.get(f"/?{query}")
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_htmx_request_gets_only_the_results_fragment(client, htmx_headers):
    f.create_slot(package=f.create_package(title="理论包"))
    response = client.get("/?q=理论", headers=htmx_headers)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html and html.lstrip().startswith('<div id="results"')
    assert "理论包" in html
    assert "HX-Request" in response.headers["Vary"]


def test_boosted_request_gets_the_full_page(client):
    response = client.get("/", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in response.get_data(as_text=True)


def test_menu_is_paginated(app, client):
    for n in range(app.config["PAGE_SIZE"] + 3):
        f.create_package(title=f"分页包{n:02d}")
    first = client.get("/").get_data(as_text=True)
    second = client.get("/?page=2").get_data(as_text=True)
    assert "分页包00" in first and "分页包22" not in first
    assert "分页包22" in second and 'rel="prev"' in second


def test_menu_query_count_does_not_grow_with_data(client, count_queries):
    def measure():
        with count_queries() as counter:
            assert client.get("/").status_code == 200
        return counter.count

    station = f.create_station()
    f.create_slot(package=f.create_package(stations=[station]))
    small = measure()
    for _ in range(8):
        package = f.create_package(stations=[station, f.create_station()])
        for day in range(5):
            slot = f.create_slot(package=package, station=station, starts_at=clock.now() + timedelta(days=day + 1))
            f.create_booking(slot=slot, headcount=2)
    assert measure() == small


def test_english_is_available(client):
    client.post("/lang", data={"lang": "en", "next": "/"})
    html = client.get("/").get_data(as_text=True)
    assert "Themed Party-day service menu" in html and 'lang="en"' in html
    client.post("/lang", data={"lang": "zh_CN", "next": "/"})
    assert "主题党日服务菜单" in client.get("/").get_data(as_text=True)


def test_menu_cards_say_group_size_per_batch_and_the_hero_names_no_branch(client):
    """Glossary (README): a package's group size is 每批人数, never 每组; the menu is for every kind of organisation."""
    f.create_slot(package=f.create_package(title="批次包", min_group_size=5, max_group_size=40))
    html = client.get("/").get_data(as_text=True)
    assert "每批 5–40 人 · 约" in html and "每组" not in html
    assert "预约党群服务站的主题党日活动" in html and "为支部预约" not in html
