"""Statistics /admin/stats and /host/stats against a dataset built here (numbers worked out by hand)."""
from datetime import datetime, timedelta, timezone
from io import BytesIO

import pytest
from openpyxl import load_workbook

from blueprints.admin import stats as stats_module
from blueprints.booking.models import BookingStatus
from blueprints.catalog.models import Category, SlotStatus
from blueprints.core import clock

from . import factories as f


def at(day: str, hour: int = 9):
    y, m, d = (int(p) for p in day.split("-"))
    return clock.local_datetime(datetime(y, m, d).date(), hour)


@pytest.fixture
def scene(frozen_now):
    """Now is 2026-11-23 (Q4 2026). Two stations, five slots, six organisations."""
    a = f.create_station(name="七宝站", subdistrict="七宝镇")
    b = f.create_station(name="华漕站", subdistrict="华漕镇")
    campaign = f.create_campaign(name="进博主题")
    theory_a = f.create_package(title="理论A", category=Category.THEORY, stations=[a, b], campaign=campaign)
    practice_b = f.create_package(title="实践B", category=Category.PRACTICE, stations=[b])
    volunteer_a = f.create_package(title="志愿A", category=Category.VOLUNTEER, stations=[a])
    o1 = f.create_organisation(name="一支部", subdistrict="七宝镇")
    o2 = f.create_organisation(name="二支部", subdistrict="七宝镇")
    o3 = f.create_organisation(name="三支部", subdistrict="华漕镇")
    o4 = f.create_organisation(name="四支部", subdistrict="华漕镇")
    o5 = f.create_organisation(name="五支部", subdistrict="新虹街道")
    f.create_organisation(name="撤销的支部", subdistrict="新虹街道", active=False)

    s1 = f.create_slot(package=theory_a, station=a, starts_at=at("2026-11-02"), capacity=30)
    f.create_booking(slot=s1, organisation=o1, headcount=10, status=BookingStatus.ATTENDED, attended_headcount=8)
    f.create_booking(slot=s1, organisation=o2, headcount=5, status=BookingStatus.NO_SHOW)
    f.create_booking(slot=s1, organisation=o3, headcount=7, status=BookingStatus.CANCELLED)
    s2 = f.create_slot(package=practice_b, station=b, starts_at=at("2026-11-10", 14), capacity=20)
    f.create_booking(slot=s2, organisation=o1, headcount=12, status=BookingStatus.ATTENDED)
    f.create_booking(slot=s2, organisation=o4, headcount=3, status=BookingStatus.DECLINED)
    s3 = f.create_slot(package=volunteer_a, station=a, starts_at=at("2026-11-30"), capacity=15)
    f.create_booking(slot=s3, organisation=o2, headcount=6, status=BookingStatus.CONFIRMED)
    f.create_booking(slot=s3, organisation=o5, headcount=4, status=BookingStatus.WAITLISTED)
    f.create_booking(slot=s3, organisation=o3, headcount=2, status=BookingStatus.PENDING)
    s4 = f.create_slot(package=theory_a, station=b, starts_at=at("2026-09-20"), capacity=40)  # last quarter
    f.create_booking(slot=s4, organisation=o4, headcount=9)
    f.create_slot(package=volunteer_a, station=a, starts_at=at("2026-12-05"), capacity=50,
                  status=SlotStatus.CANCELLED)
    return {"a": a, "b": b, "campaign": campaign, "orgs": (o1, o2, o3, o4, o5)}


def _filters(**kw):
    start, end = stats_module.default_period()
    return stats_module.StatsFilters(date_from=start, date_to=end, **kw)


def test_default_period_is_current_quarter_in_shanghai(frozen_now):
    assert stats_module.default_period() == (datetime(2026, 10, 1).date(), datetime(2026, 12, 31).date())
    # 2026-12-31 20:00 UTC is already 2027-01-01 in Shanghai.
    frozen_now.set(datetime(2026, 12, 31, 20, 0, tzinfo=timezone.utc))
    assert stats_module.default_period()[0] == datetime(2027, 1, 1).date()


def test_bookings_and_participants_by_category(scene):
    result = stats_module.compute(_filters())
    by = {r.category: (r.bookings, r.participants, r.attended_participants) for r in result.categories}
    assert by == {Category.THEORY: (2, 15, 8), Category.PRACTICE: (1, 12, 12), Category.VOLUNTEER: (2, 8, 0)}
    assert (result.total_bookings, result.total_participants) == (5, 35)


def test_station_utilisation_excludes_cancelled_slots_capacity(scene):
    result = stats_module.compute(_filters())
    rows = {r.name: (r.slots, r.capacity, r.booked, r.attended) for r in result.stations}
    assert rows == {"七宝站": (2, 45, 23, 8), "华漕站": (1, 20, 12, 12)}


def test_attendance_and_no_show_rates(scene):
    a = stats_module.compute(_filters()).attendance
    assert (a.attended, a.no_show, a.awaiting) == (2, 1, 2)
    assert a.attendance_rate == pytest.approx(2 / 3) and a.no_show_rate == pytest.approx(1 / 3)


def test_unsettled_confirmed_groups_of_an_ended_slot_count_as_no_shows_before_settlement(scene, frozen_now):
    from datetime import datetime, timezone

    frozen_now.set(datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc))  # s3 (30 Nov, morning) is over
    a = stats_module.compute(_filters()).attendance
    assert (a.attended, a.no_show, a.awaiting) == (2, 2, 1)  # its confirmed group did not come; pending waits


def test_weekly_trend_by_monday_of_the_slot_week(scene):
    weeks = {r.week_start.isoformat(): (r.bookings, r.participants)
             for r in stats_module.compute(_filters()).weeks}
    assert weeks["2026-11-02"] == (2, 15)
    assert weeks["2026-11-09"] == (1, 12)
    assert weeks["2026-11-30"] == (2, 8)
    assert weeks["2026-11-16"] == (0, 0)
    assert min(weeks) == "2026-09-28" and max(weeks) == "2026-12-28"


def test_coverage_by_subdistrict_and_uncovered_list(scene):
    result = stats_module.compute(_filters())
    cov = {r.subdistrict: (r.organisations, r.covered) for r in result.coverage}
    assert cov == {"七宝镇": (2, 2), "华漕镇": (2, 1), "新虹街道": (1, 0)}
    assert sorted(o.name for o in result.uncovered) == ["五支部", "四支部"]
    assert result.uncovered_total == 2


def test_filters_station_campaign_and_subdistrict(scene):
    by_station = stats_module.compute(_filters(station_id=scene["b"].id))
    assert [(r.category, r.bookings) for r in by_station.categories if r.bookings] == [(Category.PRACTICE, 1)]
    by_campaign = stats_module.compute(_filters(campaign_id=scene["campaign"].id))
    assert by_campaign.total_bookings == 2 and by_campaign.total_participants == 15
    by_sub = stats_module.compute(_filters(subdistrict="华漕镇"))
    assert [r.name for r in by_sub.stations] == ["华漕站"]
    assert [(r.subdistrict, r.organisations, r.covered) for r in by_sub.coverage] == [("华漕镇", 2, 1)]


def test_admin_stats_page_shows_numbers_charts_and_tables(client, login, scene):
    login(f.create_admin())
    response = client.get("/admin/stats")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in html
    assert html.count("<svg") == 5  # categories (groups, people), stations, weeks, coverage
    assert '<tr data-category="theory"><th scope="row">理论学习</th><td>2</td><td>15</td><td>8</td></tr>' in html
    assert f'<tr data-station-id="{scene["a"].id}"><th scope="row">七宝站</th><td>2</td><td>45</td><td>23</td><td>8</td><td>51%</td></tr>' in html
    assert "67%" in html and "33%" in html  # attendance / no-show
    assert "五支部" in html and "四支部" in html


def test_admin_stats_htmx_returns_results_only(client, login, scene, htmx_headers):
    login(f.create_admin())
    response = client.get(f"/admin/stats?station={scene['b'].id}", headers=htmx_headers)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html and 'id="results"' in html
    assert "华漕站" in html and 'data-station-id="%s"' % scene["a"].id not in html


def test_admin_stats_bad_dates_422_with_message(client, login, scene):
    login(f.create_admin())
    response = client.get("/admin/stats?date_from=2026-11-10&date_to=2026-11-01")
    assert response.status_code == 422
    assert "结束日期早于开始日期" in response.get_data(as_text=True)


def test_admin_stats_queries_do_not_grow_with_stations(client, login, scene, count_queries):
    login(f.create_admin())
    with count_queries() as small:
        client.get("/admin/stats")
    for i in range(6):
        station = f.create_station()
        slot = f.create_slot(package=f.create_package(stations=[station]), station=station,
                             starts_at=at("2026-11-%02d" % (10 + i)))
        f.create_booking(slot=slot, status=BookingStatus.ATTENDED)
    with count_queries() as big:
        client.get("/admin/stats")
    assert big.count == small.count
    assert big.count <= 12


def test_admin_stats_export_xlsx_has_chinese_headers_and_numbers(client, login, scene):
    login(f.create_admin())
    response = client.get("/admin/stats/stations.xlsx")
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    ws = load_workbook(BytesIO(response.data)).active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][:5] == ("站点", "场次数", "名额", "预约人数", "签到人数")
    assert ("七宝站", 2, 45, 23, 8) == rows[1][:5]
    uncovered = load_workbook(BytesIO(client.get("/admin/stats/uncovered.xlsx").data)).active
    assert sorted(r[1] for r in uncovered.iter_rows(min_row=2, values_only=True)) == ["五支部", "四支部"]
    assert client.get("/admin/stats/nothing.xlsx").status_code == 404


def test_host_stats_shows_only_own_stations(client, login, scene):
    login(f.create_host(stations=[scene["a"]]))
    html = client.get("/host/stats").get_data(as_text=True)
    assert "七宝站" in html and "华漕站" not in html
    assert 'id="h-coverage"' not in html
    assert '<tr data-category="practice"><th scope="row">党性实践</th><td>0</td>' in html


def test_host_stats_other_station_host_gets_404(client, login, scene):
    login(f.create_host(stations=[scene["a"]]))
    assert client.get(f"/host/stats?station={scene['b'].id}").status_code == 404
    assert client.get(f"/host/stats/stations.xlsx?station={scene['b'].id}").status_code == 404
    assert client.get("/host/stats/coverage.xlsx").status_code == 404


def test_host_stats_export_only_own_stations(client, login, scene):
    login(f.create_host(stations=[scene["b"]]))
    ws = load_workbook(BytesIO(client.get("/host/stats/stations.xlsx").data)).active
    assert [r[0] for r in ws.iter_rows(min_row=2, values_only=True)] == ["华漕站"]


@pytest.mark.parametrize("path", ["/admin/stats", "/admin/stats/stations.xlsx"])
def test_admin_stats_secretary_and_host_get_403(client, login, path):
    login(f.create_secretary())
    assert client.get(path).status_code == 403


def test_admin_stats_host_gets_403(client, login):
    login(f.create_host())
    assert client.get("/admin/stats").status_code == 403


def test_admin_stats_anonymous_redirected_to_login(client):
    response = client.get("/admin/stats")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("role", ["secretary", "admin"])
def test_host_stats_non_host_gets_403(client, login, role):
    login(f.create_secretary() if role == "secretary" else f.create_admin())
    assert client.get("/host/stats").status_code == 403


def test_admin_stats_each_chart_has_its_own_scale_page_and_fragment(client, login, scene, htmx_headers):
    """Groups and people never share a scale: each chart's maximum is its own series' largest value."""
    import re

    login(f.create_admin())
    for headers in ({}, htmx_headers):
        html = client.get("/admin/stats", headers=headers).get_data(as_text=True)
        maxima = re.findall(r'<svg class="chart chart-(\w+)"[^>]*data-max="([^"]+)"', html)
        # groups by category, people by category, station places, weeks (groups, people), organisations
        assert maxima == [("bars", "2"), ("bars", "15"), ("bars", "45"), ("columns", "2,15"), ("bars", "2")]
        assert html.count('<div class="table-scroll" tabindex="0" role="region" aria-label="') == 5
        assert 'aria-label="每周趋势（表格）"' in html


def test_admin_stats_weekly_table_folds_runs_of_empty_weeks_admin(client, login, scene):
    login(f.create_admin())
    html = client.get("/admin/stats").get_data(as_text=True)
    assert '<tr data-weeks="2026-09-28/2026-10-26" class="empty-run"><th scope="row">2026-09-28 至 2026-10-26（5 周）</th><td>0</td><td>0</td></tr>' in html
    assert 'data-week="2026-11-16"' in html and 'data-week="2026-11-23"' in html  # two empty weeks stay
    assert "连续 5 周无预约" in html and "连续 4 周无预约" in html
    assert '<text class="tick now"' in html  # this week (23 Nov) is named on the axis
    # The spreadsheet keeps one row per week.
    ws = load_workbook(BytesIO(client.get("/admin/stats/weeks.xlsx").data)).active
    assert ws.max_row == 1 + 14 and ws["B1"].value == "预约批数"


def test_host_stats_charts_share_the_code_host(client, login, scene):
    login(f.create_host(stations=[scene["a"]]))
    html = client.get("/host/stats").get_data(as_text=True)
    assert html.count("<svg") == 4 and html.count('class="table-scroll"') == 4
