"""The date-first calendar: periods (ISO weeks, months) as plain functions, the open slots of a
period by day (the menu's rule), ``GET /calendar`` (page, htmx block, filters, bad input, bounded
SQL, render cache) and ``GET /host/calendar`` (roles, own station only, fill and approvals)."""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from blueprints.booking import services as booking_services
from blueprints.booking.models import BookingStatus
from blueprints.catalog.models import Category, SlotStatus
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.host import calendar as host_calendar
from blueprints.menu import calendar
from blueprints.menu.calendar import Period, PeriodError, parse_period
from blueprints.menu.queries import MenuFilters

from . import factories as f
from .cache_support import MODES, use_cache

MONDAY = date(2026, 11, 23)  # the frozen "today" (tests/conftest.py FROZEN_NOW): ISO week 2026-W48


def at(days: int, hour: int, minute: int = 0):
    """A Shanghai wall-clock time ``days`` after the frozen Monday."""
    return clock.local_datetime(MONDAY + timedelta(days=days), hour, minute)


def slot_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-slot-id="(\d+)"', html)]


def remaining(html: str, slot_id: int) -> int:
    return int(re.search(rf'data-slot-id="{slot_id}" data-remaining="(\d+)"', html).group(1))


@pytest.fixture
def city(frozen_now):
    """Two stations in two subdistricts, two packages of two categories and campaigns."""
    qibao = f.create_station(name="七宝老街党群服务站", subdistrict="七宝镇")
    hongqiao = f.create_station(name="虹桥品汇党群服务站", subdistrict="新虹街道")
    expo, hub = f.create_campaign(name="进博五彩先锋"), f.create_campaign(name="枢纽先锋")
    lecture = f.create_package(title="四史微党课", category=Category.THEORY, campaign=expo, stations=[qibao, hongqiao],
                               min_group_size=5, max_group_size=40)
    service = f.create_package(title="五色岗位志愿服务", category=Category.VOLUNTEER, campaign=hub,
                               stations=[qibao, hongqiao], min_group_size=5, max_group_size=40)
    return qibao, hongqiao, lecture, service


# -- periods ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("week,first,last", [
    ("2026-W51", date(2026, 12, 14), date(2026, 12, 20)),
    ("2026-w1", date(2025, 12, 29), date(2026, 1, 4)),  # ISO: week 1 holds the year's first Thursday
    ("2026-W53", date(2026, 12, 28), date(2027, 1, 3)),  # 2026 has 53 weeks
    (" 2027-W01 ", date(2027, 1, 4), date(2027, 1, 10)),
])
def test_an_iso_week_runs_monday_to_sunday(week, first, last):
    period = parse_period(week=week)
    assert (period.kind, period.first, period.last) == ("week", first, last)
    assert period.first.weekday() == 0 and len(period.days) == 7


@pytest.mark.parametrize("month,first,last", [
    ("2026-12", date(2026, 12, 1), date(2026, 12, 31)),
    ("2026-2", date(2026, 2, 1), date(2026, 2, 28)),
    ("2028-02", date(2028, 2, 1), date(2028, 2, 29)),
])
def test_a_month_runs_from_its_first_to_its_last_day(month, first, last):
    period = parse_period(month=month)
    assert (period.kind, period.first, period.last, period.value) == ("month", first, last, f"{first:%Y-%m}")


def test_without_arguments_the_period_is_the_week_of_today():
    assert parse_period(today=date(2026, 12, 3)) == Period("week", 2026, 49)
    assert parse_period(today=date(2027, 1, 1)) == Period("week", 2026, 53)  # a Friday of 2026's last week


@pytest.mark.parametrize("week,month,message", [
    ("2026-W60", "", "2026年只有第1周至第53周，没有第60周。"),
    ("2027-W53", "", "2027年只有第1周至第52周，没有第53周。"),
    ("2026-W00", "", "2026年只有第1周至第53周，没有第0周。"),
    ("abc", "", "周的写法是“年份-W周数”，例如 2026-W51。"),
    ("2026-51", "", "周的写法是“年份-W周数”，例如 2026-W51。"),
    ("1999-W10", "", "日历只能查看2000年至2099年。"),
    ("", "2026-13", "月份只能是1至12，没有13月。"),
    ("", "2026-00", "月份只能是1至12，没有0月。"),
    ("", "abc", "月份的写法是“年份-月份”，例如 2026-12。"),
    ("", "2026-12-01", "月份的写法是“年份-月份”，例如 2026-12。"),
    ("", "12000-01", "月份的写法是“年份-月份”，例如 2026-12。"),
    ("2026-W51", "2026-12", "请只选择一周或一个月，不要同时选择。"),
])
def test_a_bad_week_or_month_is_refused_with_a_chinese_message(week, month, message):
    with pytest.raises(PeriodError) as refused:
        parse_period(week=week, month=month)
    assert refused.value.message == message


def test_periods_are_labelled_in_chinese():
    assert parse_period(week="2026-W51").label() == "2026年第51周（12月14日—12月20日）"
    assert parse_period(week="2026-W53").label() == "2026年第53周（12月28日—1月3日）"
    assert parse_period(month="2026-12").label() == "2026年12月"


def test_previous_and_next_cross_the_year():
    assert Period("week", 2026, 53).next() == Period("week", 2027, 1)
    assert Period("week", 2027, 1).previous() == Period("week", 2026, 53)
    assert Period("month", 2026, 12).next() == Period("month", 2027, 1)
    assert Period("month", 2027, 1).previous() == Period("month", 2026, 12)
    assert Period("month", 2000, 1).previous() is None and Period("month", 2099, 12).next() is None
    assert Period("week", 2000, 1).previous() is None


def test_the_other_view_is_the_month_of_the_week_or_the_week_of_the_month():
    today = date(2026, 12, 3)
    assert Period("week", 2026, 49).other_view(today) == Period("month", 2026, 12)  # holds today
    assert Period("week", 2026, 53).other_view(today) == Period("month", 2026, 12)  # its Thursday: 31 Dec
    assert Period("month", 2026, 12).other_view(today) == Period("week", 2026, 49)
    assert Period("month", 2027, 3).other_view(today) == Period("week", 2027, 9)  # the week of 1 March


def test_a_months_grid_is_whole_weeks_monday_first():
    grid = Period("month", 2026, 12).grid_days
    assert grid[0] == date(2026, 11, 30) and grid[-1] == date(2027, 1, 3) and len(grid) % 7 == 0


# -- the open slots of a period ----------------------------------------------------------------------

def _shown(view) -> dict[date, list[int]]:
    return {day.day: [s.id for s in day.slots] for day in view.days if day.slots}


def test_the_calendar_lists_what_the_menu_lists(city):
    qibao, hongqiao, lecture, service = city
    listed = f.create_slot(package=lecture, station=qibao, starts_at=at(1, 9))
    f.create_slot(package=lecture, station=qibao, starts_at=at(1, 14), status=SlotStatus.CLOSED)
    f.create_slot(package=lecture, station=qibao, starts_at=at(2, 9), status=SlotStatus.CANCELLED)
    f.create_slot(package=lecture, station=qibao, starts_at=at(0, 9))  # started at 09:00, it is 10:00
    f.create_slot(package=lecture, station=qibao, starts_at=at(7, 9))  # next week
    closed_station = f.create_station(active=False)
    gone = f.create_package(active=False, stations=[closed_station, qibao])
    f.create_slot(package=gone, station=qibao, starts_at=at(3, 9))
    f.create_slot(package=service, station=closed_station, starts_at=at(3, 9))
    full = f.create_slot(package=service, station=hongqiao, starts_at=at(4, 9), capacity=10)
    f.create_booking(slot=full, headcount=8)  # 2 places left, fewer than a group of 5: listed as full
    view = calendar.open_slots(parse_period(week="2026-W48"), MenuFilters())
    assert _shown(view) == {MONDAY + timedelta(days=1): [listed.id], MONDAY + timedelta(days=4): [full.id]}
    assert view.availability[full.id].remaining == 2 and not view.availability[full.id].fits_group(5)


def test_slots_fall_on_their_shanghai_day(city):
    qibao, hongqiao, lecture, service = city
    late_sunday = f.create_slot(package=lecture, station=qibao, starts_at=at(6, 23, 30))  # 15:30 UTC
    early_monday = f.create_slot(package=lecture, station=qibao, starts_at=at(7, 0, 30))  # 16:30 UTC, Sunday
    this_week = calendar.open_slots(parse_period(week="2026-W48"), MenuFilters())
    next_week = calendar.open_slots(parse_period(week="2026-W49"), MenuFilters())
    assert _shown(this_week) == {date(2026, 11, 29): [late_sunday.id]}
    assert _shown(next_week) == {date(2026, 11, 30): [early_monday.id]}


def test_the_menus_filters_narrow_the_calendar(city):
    qibao, hongqiao, lecture, service = city
    a = f.create_slot(package=lecture, station=qibao, starts_at=at(1, 9))
    b = f.create_slot(package=service, station=qibao, starts_at=at(1, 14))
    c = f.create_slot(package=lecture, station=hongqiao, starts_at=at(2, 9))
    week = parse_period(week="2026-W48")

    def ids(**filters):
        return sorted(s for day in calendar.open_slots(week, MenuFilters(**filters)).days for s in
                      (slot.id for slot in day.slots))

    assert ids() == [a.id, b.id, c.id]
    assert ids(category=Category.VOLUNTEER) == [b.id]
    assert ids(station_id=hongqiao.id) == [c.id]
    assert ids(subdistrict="七宝镇") == [a.id, b.id]
    assert ids(campaign_id=lecture.campaign_id) == [a.id, c.id]
    assert ids(campaign_id=lecture.campaign_id, subdistrict="七宝镇") == [a.id]


def test_a_busy_day_shows_its_first_slots_and_counts_the_rest(city):
    qibao, hongqiao, lecture, service = city
    slots = [f.create_slot(package=lecture, station=qibao, starts_at=at(2, 8, 5 * n)) for n in range(11)]
    view = calendar.open_slots(parse_period(week="2026-W48"), MenuFilters())
    day = next(d for d in view.days if d.slots)
    assert [s.id for s in day.slots] == [s.id for s in slots[:calendar.WEEK_DAY_LIMIT]]
    assert (day.total, day.hidden) == (11, 11 - calendar.WEEK_DAY_LIMIT)
    month = calendar.open_slots(parse_period(month="2026-11"), MenuFilters())
    assert [d.hidden for d in month.days if d.slots] == [11 - calendar.MONTH_DAY_LIMIT]
    assert month.total == 11


# -- GET /calendar -------------------------------------------------------------------------------------

def test_calendar_shows_this_weeks_open_slots_linking_to_their_pages(client, city):
    qibao, hongqiao, lecture, service = city
    first = f.create_slot(package=lecture, station=qibao, starts_at=at(1, 9), capacity=30)
    second = f.create_slot(package=service, station=hongqiao, starts_at=at(3, 14, 30), ends_at=at(3, 16))
    f.create_booking(slot=first, headcount=12)
    response = client.get("/calendar")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "2026年第48周（11月23日—11月29日）" in html
    assert slot_ids(html) == [first.id, second.id]
    assert remaining(html, first.id) == 18
    assert f'href="/slots/{first.id}"' in html and f'href="/slots/{second.id}"' in html
    assert "四史微党课" in html and "七宝老街党群服务站" in html and "14:30–16:00" in html
    assert "剩余 18 / 30 个名额" in html
    for link in ("/calendar?week=2026-W47", "/calendar?week=2026-W49", "/calendar?month=2026-11"):
        assert f'href="{link}" hx-get="{link}" hx-target="#calendar"' in html
    assert 'id="calendar-filters" method="get"' in html


def test_calendar_month_view_and_links(client, city):
    qibao, hongqiao, lecture, service = city
    december = f.create_slot(package=lecture, station=qibao, starts_at=clock.local_datetime(date(2026, 12, 24), 9))
    html = client.get("/calendar?month=2026-12").get_data(as_text=True)
    assert "2026年12月" in html and slot_ids(html) == [december.id]
    assert 'href="/calendar?month=2026-11"' in html and 'href="/calendar?month=2027-01"' in html
    assert 'href="/calendar?week=2026-W48"' in html  # 本周
    assert 'href="/calendar?week=2026-W49"' in html  # the week of 1 December


def test_calendar_htmx_gets_only_the_calendar_block(client, city, htmx_headers):
    qibao, hongqiao, lecture, service = city
    slot = f.create_slot(package=lecture, station=qibao, starts_at=at(8, 9))
    response = client.get("/calendar?week=2026-W49", headers=htmx_headers)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html and 'id="calendar-filters"' not in html
    assert html.lstrip().startswith('<section id="calendar"')
    assert slot_ids(html) == [slot.id]
    assert '<div id="station-filter" class="field-slot" hx-swap-oob="true">' in html
    assert 'name="week" value="2026-W49"' in html  # the filter form keeps the shown week
    boosted = client.get("/calendar?week=2026-W49", headers={**htmx_headers, "HX-Boosted": "true"})
    assert "<html" in boosted.get_data(as_text=True)


def test_calendar_filters_and_links_carry_them(client, city):
    qibao, hongqiao, lecture, service = city
    a = f.create_slot(package=lecture, station=qibao, starts_at=at(1, 9))
    f.create_slot(package=service, station=hongqiao, starts_at=at(2, 9))
    html = client.get(f"/calendar?week=2026-W48&category=theory&station={qibao.id}&q=ignored").get_data(as_text=True)
    assert slot_ids(html) == [a.id]
    assert f'href="/calendar?category=theory&amp;station={qibao.id}&amp;week=2026-W49"' in html
    assert 'id="filters" open' in html


def test_a_busy_day_links_to_the_menu_of_that_day(client, city):
    qibao, hongqiao, lecture, service = city
    for n in range(calendar.WEEK_DAY_LIMIT + 3):
        f.create_slot(package=lecture, station=qibao, starts_at=at(2, 8, 5 * n))
    html = client.get("/calendar?category=theory").get_data(as_text=True)
    assert len(slot_ids(html)) == calendar.WEEK_DAY_LIMIT
    assert "另有 3 个场次" in html
    assert 'href="/?date_from=2026-11-25&amp;date_to=2026-11-25&amp;category=theory"' in html


@pytest.mark.parametrize("query,message", [
    ("week=2026-W60", "2026年只有第1周至第53周，没有第60周。"),
    ("week=abc", "周的写法是“年份-W周数”，例如 2026-W51。"),
    ("month=2026-13", "月份只能是1至12，没有13月。"),
    ("month=%ff%fe", "月份的写法是“年份-月份”，例如 2026-12。"),
    ("week=2026-W51&month=2026-12", "请只选择一周或一个月，不要同时选择。"),
])
def test_calendar_refuses_a_bad_period_with_422_and_shows_this_week(client, city, htmx_headers, query, message):
    qibao, hongqiao, lecture, service = city
    slot = f.create_slot(package=lecture, station=qibao, starts_at=at(1, 9))
    for headers in ({}, htmx_headers):
        response = client.get(f"/calendar?{query}", headers=headers)
        html = response.get_data(as_text=True)
        assert response.status_code == 422
        assert message in html and "下面显示的是本周的场次。" in html and 'role="alert"' in html
        assert slot_ids(html) == [slot.id]


def test_calendar_refuses_bad_filters_like_the_menu(client, city):
    response = client.get("/calendar?category=nonsense&station=abc")
    assert response.status_code == 422
    assert 'class="error"' in response.get_data(as_text=True)


def test_calendar_is_linked_from_the_menu_for_everyone_and_from_the_navigation_for_secretaries(client, login, city):
    html = client.get("/").get_data(as_text=True)
    assert '<a href="/calendar">按日期查看 ›</a>' in html
    assert '<li><a href="/calendar">场次日历</a></li>' not in html  # a visitor's phone bar has no fold for it
    login(f.create_secretary())
    assert '<li><a href="/calendar">场次日历</a></li>' in client.get("/bookings").get_data(as_text=True)
    login(f.create_host())
    assert '<li><a href="/calendar">场次日历</a></li>' not in client.get("/host/").get_data(as_text=True)


@pytest.mark.parametrize("role", ["anon", "secretary", "host", "admin"])
def test_everyone_who_sees_the_menu_sees_the_calendar(client, login, city, role):
    qibao, hongqiao, lecture, service = city
    slot = f.create_slot(package=lecture, station=qibao, starts_at=at(1, 9))
    if role != "anon":
        login({"secretary": f.create_secretary, "host": f.create_host, "admin": f.create_admin}[role]())
    response = client.get("/calendar")
    assert response.status_code == 200 and slot_ids(response.get_data(as_text=True)) == [slot.id]


def _city_week(stations: int, slots_per_station: int):
    """Slots at many stations over the frozen week, some booked."""
    package = f.create_package(stations=[])
    for s in range(stations):
        station = f.create_station()
        package.stations.append(station)
        for n in range(slots_per_station):
            slot = f.create_slot(package=package, station=station, starts_at=at(1 + n % 6, 8 + s % 10, n % 4 * 10))
            if n % 2:
                f.create_booking(slot=slot, headcount=3)
    db.session.commit()


@pytest.mark.parametrize("path", ["/calendar", "/calendar?month=2026-11", "/calendar?subdistrict=新虹街道"])
def test_calendar_sql_does_not_grow_with_the_data(client, app, monkeypatch, frozen_now, count_queries, path):
    use_cache(app, monkeypatch, "uncached")
    _city_week(stations=1, slots_per_station=2)
    with count_queries() as small:
        assert client.get(path).status_code == 200
    _city_week(stations=12, slots_per_station=14)  # 170 slots: busy days are capped
    with count_queries() as large:
        html = client.get(path).get_data(as_text=True)
    assert "另有" in html
    assert large.count == small.count <= 6, large.statements


# -- the render cache ------------------------------------------------------------------------------------

@pytest.fixture(params=["file", "redis"])
def cache_mode(request, app, monkeypatch, frozen_now):
    use_cache(app, monkeypatch, request.param)
    return request.param


def test_calendar_is_served_from_the_cache_and_a_booking_shows_on_the_next_get(client, city, cache_mode,
                                                                               count_queries):
    qibao, hongqiao, lecture, service = city
    slot = f.create_slot(package=lecture, station=qibao, starts_at=at(3, 9), capacity=30)
    assert remaining(client.get("/calendar").get_data(as_text=True), slot.id) == 30
    with count_queries() as warm:
        client.get("/calendar")
    assert warm.count == 0
    booking_services.book(f.create_secretary(), slot.id, booking_services.BookingRequest(10, "王书记", "13900000000"))
    assert remaining(client.get("/calendar").get_data(as_text=True), slot.id) == 20


def test_a_new_slot_appears_and_a_started_one_leaves(client, city, cache_mode, frozen_now, htmx_headers):
    qibao, hongqiao, lecture, service = city
    first = f.create_slot(package=lecture, station=qibao, starts_at=at(0, 14))
    assert slot_ids(client.get("/calendar").get_data(as_text=True)) == [first.id]
    assert slot_ids(client.get("/calendar", headers=htmx_headers).get_data(as_text=True)) == [first.id]
    added = f.create_slot(package=service, station=hongqiao, starts_at=at(2, 9))
    assert slot_ids(client.get("/calendar").get_data(as_text=True)) == [first.id, added.id]
    assert slot_ids(client.get("/calendar", headers=htmx_headers).get_data(as_text=True)) == [first.id, added.id]
    frozen_now.set(first.starts_at + timedelta(minutes=1))
    assert slot_ids(client.get("/calendar").get_data(as_text=True)) == [added.id]


def test_a_closed_slot_leaves_the_calendar_for_a_logged_in_user_too(client, login, city, cache_mode):
    qibao, hongqiao, lecture, service = city
    slot = f.create_slot(package=lecture, station=qibao, starts_at=at(2, 9))
    login(f.create_secretary())
    assert slot_ids(client.get("/calendar").get_data(as_text=True)) == [slot.id]
    slot.status = SlotStatus.CLOSED
    db.session.commit()
    assert slot_ids(client.get("/calendar").get_data(as_text=True)) == []


# -- GET /host/calendar ------------------------------------------------------------------------------------

@pytest.fixture
def host_scene(city):
    qibao, hongqiao, lecture, service = city
    host = f.create_host(stations=[qibao])
    qibao.requires_approval = True
    db.session.commit()
    open_slot = f.create_slot(package=lecture, station=qibao, starts_at=at(1, 9), capacity=20)
    closed = f.create_slot(package=service, station=qibao, starts_at=at(2, 9), status=SlotStatus.CLOSED)
    cancelled = f.create_slot(package=lecture, station=qibao, starts_at=at(3, 9), status=SlotStatus.CANCELLED)
    other = f.create_slot(package=lecture, station=hongqiao, starts_at=at(1, 14))
    f.create_booking(slot=open_slot, headcount=8)
    f.create_booking(slot=open_slot, headcount=5, status=BookingStatus.PENDING)
    f.create_booking(slot=open_slot, headcount=4, status=BookingStatus.PENDING)
    return host, open_slot, closed, cancelled, other


def test_host_sees_every_slot_of_their_station_labelled_with_fill_and_approvals(client, login, host_scene):
    host, open_slot, closed, cancelled, other = host_scene
    login(host)
    response = client.get("/host/calendar")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert slot_ids(html) == [open_slot.id, closed.id, cancelled.id]
    assert other.id not in slot_ids(html)  # another station's
    for slot in (open_slot, closed, cancelled):
        assert f'href="/host/slots/{slot.id}"' in html
    assert "已确认 8 / 20 人，9 人待审核" in html  # the fill bar's text
    assert "2 个预约待审核" in html
    assert '<span class="status status-closed">' in html and '<span class="status status-cancelled">' in html
    assert '2 bookings await' not in html and "2 个预约等待审核" in html  # the week's total, to the approvals


def test_host_calendar_month_and_htmx_block(client, login, host_scene, htmx_headers):
    host, open_slot, closed, cancelled, other = host_scene
    login(host)
    month = client.get("/host/calendar?month=2026-11").get_data(as_text=True)
    assert "2026年11月" in month and slot_ids(month) == [open_slot.id, closed.id, cancelled.id]
    fragment = client.get("/host/calendar?week=2026-W49", headers=htmx_headers)
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in html and html.lstrip().startswith('<section id="calendar"')
    assert slot_ids(html) == [] and "您的站点这段时间没有场次。" in html


def test_host_calendar_refuses_a_bad_period(client, login, host_scene):
    host, *_ = host_scene
    login(host)
    response = client.get("/host/calendar?month=2026-13")
    assert response.status_code == 422 and "月份只能是1至12，没有13月。" in response.get_data(as_text=True)


def test_host_of_another_station_sees_none_of_these_slots(client, login, host_scene):
    host, open_slot, closed, cancelled, other = host_scene
    login(f.create_host(stations=[other.station]))
    assert slot_ids(client.get("/host/calendar").get_data(as_text=True)) == [other.id]


@pytest.mark.parametrize("role,status", [("anon", 302), ("secretary", 403), ("admin", 403)])
def test_only_station_hosts_open_the_host_calendar(client, login, host_scene, role, status):
    if role == "secretary":
        login(f.create_secretary())
    elif role == "admin":
        login(f.create_admin())
    response = client.get("/host/calendar")
    assert response.status_code == status
    if role == "anon":
        assert "/login" in response.headers["Location"]


def test_host_dashboard_links_to_the_host_calendar(client, login, host_scene):
    host, *_ = host_scene
    login(host)
    assert 'href="/host/calendar"' in client.get("/host/").get_data(as_text=True)


def test_host_calendar_sql_does_not_grow_with_the_data(client, login, frozen_now, count_queries):
    stations = [f.create_station(), f.create_station()]
    host = f.create_host(stations=stations)
    package = f.create_package(stations=stations)

    def add(per_station):
        for station in stations:
            for n in range(per_station):
                slot = f.create_slot(package=package, station=station, starts_at=at(1 + n % 6, 8 + n % 9))
                f.create_booking(slot=slot, headcount=2, status=BookingStatus.PENDING if n % 2 else
                                 BookingStatus.CONFIRMED)

    add(1)
    login(host)
    client.get("/host/")  # the session's user is loaded once (accounts/session_users.py)
    with count_queries() as small:
        assert client.get("/host/calendar").status_code == 200
    add(40)
    with count_queries() as large:
        html = client.get("/host/calendar").get_data(as_text=True)
    assert "另有" in html
    assert large.count == small.count <= 4, large.statements  # stations, slots, places, approvals


@pytest.mark.parametrize("mode", MODES)
def test_host_calendar_is_fresh_after_a_booking(client, login, app, monkeypatch, host_scene, mode):
    use_cache(app, monkeypatch, mode)
    host, open_slot, *_ = host_scene
    login(host)
    assert "已确认 8 / 20 人" in client.get("/host/calendar").get_data(as_text=True)
    f.create_booking(slot=open_slot, headcount=3)
    assert "已确认 11 / 20 人" in client.get("/host/calendar").get_data(as_text=True)


def test_host_slots_are_every_slot_of_the_stations_with_fill_and_pending(host_scene):
    host, open_slot, closed, cancelled, other = host_scene
    view = host_calendar.host_slots(parse_period(week="2026-W48"), [open_slot.station_id])
    lines = [line for day in view.days for line in day.slots]
    assert [line.slot.id for line in lines] == [open_slot.id, closed.id, cancelled.id]
    assert (lines[0].confirmed_people, lines[0].pending_people, lines[0].pending_groups) == (8, 9, 2)
    assert host_calendar.pending_total(view) == 2
    assert host_calendar.host_slots(parse_period(week="2026-W48"), []).total == 0


def test_the_default_week_and_today_follow_the_clock(client, city, cache_mode, frozen_now):
    qibao, hongqiao, lecture, service = city
    f.create_slot(package=lecture, station=qibao, starts_at=at(9, 9))
    html = client.get("/calendar").get_data(as_text=True)
    assert "2026年第48周" in html
    assert re.search(r'class="cal-day[^"]* is-today[^"]*"\s+data-date="2026-11-23"', html)
    frozen_now.set(at(1, 0, 1))  # Tuesday, just after midnight in Shanghai
    html = client.get("/calendar").get_data(as_text=True)
    assert re.search(r'class="cal-day[^"]* is-today[^"]*"\s+data-date="2026-11-24"', html)
    frozen_now.set(at(7, 8))  # next Monday
    html = client.get("/calendar").get_data(as_text=True)
    assert "2026年第49周（11月30日—12月6日）" in html


def test_the_calendar_speaks_english_too(client, city):
    html = client.get("/calendar?lang=en").get_data(as_text=True)
    assert "Week 48 of 2026 (Nov 23 – Nov 29)" in html and "Next week ›" in html
    assert "December 2026" in client.get("/calendar?month=2026-12&lang=en").get_data(as_text=True)
