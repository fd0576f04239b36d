"""Host pages: the right host, another station's host, a secretary and an anonymous user."""
import io
from datetime import timedelta

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from blueprints.booking.models import Booking, BookingStatus
from blueprints.catalog.models import Slot, SlotStatus
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.host import checkin

from . import factories as f


@pytest.fixture
def scene(frozen_now):
    station = f.create_station(requires_approval=True, name="七宝老街党群服务站")
    host = f.create_host(stations=[station])
    package = f.create_package(stations=[station], title="四史微党课")
    slot = f.create_slot(package=package, station=station, capacity=20)
    return station, host, package, slot


HOST_PAGES = ["/host/", "/host/approvals", "/host/slots/new", "/host/series/new"]


@pytest.mark.parametrize("path", HOST_PAGES)
def test_anonymous_is_sent_to_login(client, scene, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("path", HOST_PAGES)
def test_secretary_gets_403_on_host_pages(client, login, scene, path):
    login(f.create_secretary())
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("suffix", ["", "/roster", "/roster.csv", "/roster.xlsx", "/check-in"])
def test_other_station_host_gets_404_for_slot_pages(client, login, scene, suffix):
    slot = scene[3]
    login(f.create_host())
    assert client.get(f"/host/slots/{slot.id}{suffix}").status_code == 404


def test_other_station_host_gets_404_on_capacity_and_nothing_changes(client, login, scene):
    slot = scene[3]
    login(f.create_host())
    assert client.post(f"/host/slots/{slot.id}/capacity", data={"capacity": 99}).status_code == 404
    assert db.session.get(Slot, slot.id).capacity == 20


def test_host_dashboard_shows_fill_pending_and_warnings(client, login, scene, count_queries):
    station, host, package, slot = scene
    f.create_booking(slot=slot, headcount=6)
    f.create_booking(slot=slot, headcount=4, status=BookingStatus.PENDING)
    tomorrow = clock.local_datetime(clock.today() + timedelta(days=1), 14)
    f.create_slot(package=package, station=station, starts_at=tomorrow)
    crowded = f.create_slot(package=package, station=station, max_groups=1, starts_at=clock.now() + timedelta(days=3))
    f.create_booking(slot=crowded, headcount=2)
    f.create_booking(slot=crowded, headcount=2)
    for day in range(5, 30):
        f.create_slot(package=package, station=station, starts_at=clock.now() + timedelta(days=day))
    f.create_slot(starts_at=clock.now() + timedelta(days=2), package=f.create_package(title="别人的包"))
    login(host)
    with count_queries() as counter:
        response = client.get("/host/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in html
    assert counter.count <= 14, counter.statements
    assert "1 个预约等待审核" in html
    assert "4 人待审核" in html and "<strong>6</strong> / 20" in html
    assert "明天的场次" in html and "无人预约" in html
    assert "超过上限" in html
    assert "别人的包" not in html
    assert 'rel="next"' in html  # 28 upcoming slots on pages of 20
    fragment = client.get("/host/?page=2", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and 'id="upcoming"' in fragment


def test_host_approves_and_declines_from_the_approvals_page(client, login, scene):
    _station, host, _package, slot = scene
    first = f.create_booking(slot=slot, headcount=5, status=BookingStatus.PENDING)
    second = f.create_booking(slot=slot, headcount=5, status=BookingStatus.PENDING)
    login(host)
    page = client.get("/host/approvals").get_data(as_text=True)
    assert first.organisation.name in page and second.organisation.name in page
    fragment = client.get("/host/approvals", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and 'id="approvals"' in fragment
    assert client.post(f"/host/bookings/{first.id}/approve").status_code == 302
    assert db.session.get(Booking, first.id).status is BookingStatus.CONFIRMED
    again = client.post(f"/host/bookings/{first.id}/approve")
    message = again.get_data(as_text=True)
    assert again.status_code == 409 and ("no longer awaiting approval" in message or "不再等待审核" in message)
    empty = client.post(f"/host/bookings/{second.id}/decline", data={"reason": ""})
    assert empty.status_code == 422 and "请向支部说明原因" in empty.get_data(as_text=True)
    assert db.session.get(Booking, second.id).status is BookingStatus.PENDING
    assert client.post(f"/host/bookings/{second.id}/decline", data={"reason": "当天场地已满"}).status_code == 302
    assert db.session.get(Booking, second.id).status is BookingStatus.DECLINED


def test_other_station_host_cannot_approve(client, login, scene):
    booking = f.create_booking(slot=scene[3], status=BookingStatus.PENDING)
    login(f.create_host())
    assert client.post(f"/host/bookings/{booking.id}/approve").status_code == 404
    assert db.session.get(Booking, booking.id).status is BookingStatus.PENDING


def test_host_capacity_below_headcount_is_422_with_message(client, login, scene):
    _station, host, _package, slot = scene
    f.create_booking(slot=slot, headcount=12)
    login(host)
    response = client.post(f"/host/slots/{slot.id}/capacity", data={"capacity": 10})
    html = response.get_data(as_text=True)
    error = html[html.index('id="capacity-error"'):]
    assert response.status_code == 422 and "名额不能低于已预约的 12 人" in error[:200]
    assert db.session.get(Slot, slot.id).capacity == 20
    assert client.post(f"/host/slots/{slot.id}/capacity", data={"capacity": "x"}).status_code == 422
    assert client.post(f"/host/slots/{slot.id}/capacity", data={"capacity": 15}).status_code == 302
    assert db.session.get(Slot, slot.id).capacity == 15


def test_host_slot_page_full_and_fragment(client, login, scene):
    _station, host, _package, slot = scene
    login(host)
    html = client.get(f"/host/slots/{slot.id}").get_data(as_text=True)
    assert "<html" in html and "取消场次" in html
    fragment = client.get(f"/host/slots/{slot.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and 'id="slot-main"' in fragment


def test_host_cancels_slot_with_reason(client, login, scene):
    _station, host, _package, slot = scene
    booking = f.create_booking(slot=slot, headcount=3)
    login(host)
    assert client.post(f"/host/slots/{slot.id}/cancel", data={"reason": ""}).status_code == 422
    assert client.post(f"/host/slots/{slot.id}/cancel", data={"reason": "台风停课"}).status_code == 302
    assert db.session.get(Slot, slot.id).status is SlotStatus.CANCELLED
    assert db.session.get(Booking, booking.id).status is BookingStatus.CANCELLED


def test_host_closes_and_reopens_booking(client, login, scene):
    _station, host, _package, slot = scene
    login(host)
    client.post(f"/host/slots/{slot.id}/close")
    assert db.session.get(Slot, slot.id).status is SlotStatus.CLOSED
    client.post(f"/host/slots/{slot.id}/reopen")
    assert db.session.get(Slot, slot.id).status is SlotStatus.OPEN


def test_host_creates_one_off_slot_and_bad_input_is_422(client, login, scene):
    station, host, package, _slot = scene
    login(host)
    data = {"station": station.id, "package": package.id, "day": "2026-12-01", "start": "14:00",
            "end": "16:00", "capacity": 25}
    bad = client.post("/host/slots/new", data=dict(data, end="13:00"))
    assert bad.status_code == 422 and "结束时间必须晚于开始时间" in bad.get_data(as_text=True)
    response = client.post("/host/slots/new", data=data)
    slot = db.session.scalar(sa.select(Slot).where(Slot.capacity == 25))
    assert response.status_code == 303 and response.headers["Location"] == f"/host/slots/{slot.id}"
    assert clock.to_local(slot.starts_at).strftime("%Y-%m-%d %H:%M") == "2026-12-01 14:00"


def test_host_series_preview_then_save(client, login, scene):
    station, host, package, _slot = scene
    login(host)
    data = {"station": station.id, "package": package.id, "kind": "weekly", "weekdays": ["4"],
            "week_of_month": 1, "weekday": 0, "first_day": "2026-12-28", "last_day": "2027-01-10",
            "times": "09:00，14:00", "duration_minutes": 120, "capacity": 30}
    preview = client.post("/host/series/new", data=dict(data, action="preview"))
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "元旦" in html and "已跳过" in html
    assert db.session.scalar(sa.select(sa.func.count(Slot.id))) == 1
    saved = client.post("/host/series/new", data=dict(data, action="save"))
    assert saved.status_code == 303 and saved.headers["Location"] == "/host/"
    slots = db.session.scalars(sa.select(Slot).where(Slot.series_id.is_not(None))).all()
    assert len(slots) == 2  # Friday 8 Jan at 09:00 and 14:00; Friday 1 Jan (元旦) skipped
    bad = client.post("/host/series/new", data=dict(data, times="9点", action="preview"))
    assert bad.status_code == 422 and "HH:MM" in bad.get_data(as_text=True)


def test_host_roster_after_the_slot_ended_shows_no_shows_without_writing_and_the_host_records_them(
        client, login, scene, frozen_now):
    _station, host, _package, slot = scene
    came = f.create_booking(slot=slot, headcount=5, status=BookingStatus.ATTENDED, attended_headcount=4)
    missing = f.create_booking(slot=slot, headcount=5, contact_phone="13812345678")
    login(host)
    html = client.get(f"/host/slots/{slot.id}/roster").get_data(as_text=True)
    assert "13812345678" in html and "记录未到场" not in html
    frozen_now.set(slot.ends_at + timedelta(minutes=1))
    html = client.get(f"/host/slots/{slot.id}/roster").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Booking, missing.id).status is BookingStatus.CONFIRMED  # a GET never writes
    assert "未到场" in html and "记录未到场" in html  # shown as it stands, with the button to record it
    fragment = client.get(f"/host/slots/{slot.id}/roster", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and "记录未到场" in fragment
    response = client.post(f"/host/slots/{slot.id}/no-shows", data={})
    assert response.status_code in (302, 303)
    db.session.expire_all()
    assert db.session.get(Booking, missing.id).status is BookingStatus.NO_SHOW
    assert db.session.get(Booking, came.id).status is BookingStatus.ATTENDED
    assert "记录未到场" not in client.get(f"/host/slots/{slot.id}/roster").get_data(as_text=True)


def test_host_cannot_record_no_shows_before_the_slot_is_over(client, login, scene):
    _station, host, _package, slot = scene
    booking = f.create_booking(slot=slot, headcount=5)
    login(host)
    response = client.post(f"/host/slots/{slot.id}/no-shows", data={},
                           follow_redirects=True)
    assert "活动结束后才能记录未到场" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).status is BookingStatus.CONFIRMED


def test_roster_csv_has_bom_and_xlsx_has_chinese_headers(client, login, scene):
    _station, host, _package, slot = scene
    booking = f.create_booking(slot=slot, headcount=7)
    login(host)
    csv_response = client.get(f"/host/slots/{slot.id}/roster.csv")
    assert csv_response.data.startswith(b"\xef\xbb\xbf")
    text = csv_response.data.decode("utf-8-sig")
    assert "单位/组织" in text and booking.organisation.name in text
    xlsx = client.get(f"/host/slots/{slot.id}/roster.xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    assert [c.value for c in sheet[2]][:3] == ["序号", "单位/组织", "预约人数"]
    assert sheet["B3"].value == booking.organisation.name
    assert sheet.column_dimensions["B"].width >= 30


def test_check_in_url_by_host_records_attendance(client, login, scene, frozen_now):
    _station, host, _package, slot = scene
    booking = f.create_booking(slot=slot, headcount=10)
    frozen_now.set(slot.starts_at - timedelta(hours=1))
    url = checkin.checkin_url(booking, external=False)
    login(host)
    page = client.get(url).get_data(as_text=True)
    assert booking.organisation.name in page and 'value="10"' in page
    bad = client.post(url, data={"attended_headcount": -1})
    assert bad.status_code == 422
    response = client.post(url, data={"attended_headcount": 9})
    assert response.status_code == 302
    booking = db.session.get(Booking, booking.id)
    assert booking.status is BookingStatus.ATTENDED and booking.attended_headcount == 9
    assert booking.events[-1].actor_id == host.id
    listing = client.get(f"/host/slots/{slot.id}/check-in").get_data(as_text=True)
    assert "已签到：9 人" in listing


def test_check_in_url_by_an_administrator_records_attendance_and_returns_to_the_booking(
        client, login, scene, frozen_now, htmx_headers):
    """One rule for who checks in (``User.runs_station``): the services always let administrators
    check in, and now the QR code's page does too (it refused them before)."""
    _station, _host, _package, slot = scene
    booking = f.create_booking(slot=slot, headcount=10)
    frozen_now.set(slot.starts_at - timedelta(hours=1))
    url = checkin.checkin_url(booking, external=False)
    admin = login(f.create_admin())
    page = client.get(url).get_data(as_text=True)
    assert 'name="attended_headcount"' in page
    assert f'/host/slots/{slot.id}/check-in"' not in page  # an administrator has no host pages to go to
    assert f'href="/bookings/{booking.id}"' in page
    fragment = client.get(url, headers=htmx_headers).get_data(as_text=True)
    assert 'name="attended_headcount"' in fragment and "<html" not in fragment
    response = client.post(url, data={"attended_headcount": 8})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/bookings/{booking.id}")
    booking = db.session.get(Booking, booking.id)
    assert booking.status is BookingStatus.ATTENDED and booking.events[-1].actor_id == admin.id


@pytest.mark.parametrize("who", ["other_host", "secretary"])
def test_check_in_url_used_by_anyone_else_does_nothing(client, login, scene, frozen_now, who):
    _station, _host, _package, slot = scene
    secretary = f.create_secretary()
    booking = f.create_booking(slot=slot, organisation=secretary.organisation, headcount=10)
    frozen_now.set(slot.starts_at - timedelta(hours=1))
    login(f.create_host() if who == "other_host" else secretary)
    url = checkin.checkin_url(booking, external=False)
    for response in (client.get(url), client.post(url, data={"attended_headcount": 3})):
        assert response.status_code == 403
        assert "只有七宝老街党群服务站的站点管理员" in response.get_data(as_text=True)
    assert db.session.get(Booking, booking.id).status is BookingStatus.CONFIRMED


def test_forged_check_in_token_is_404(client, login, scene):
    login(scene[1])
    assert client.get("/host/check-in/not-a-token").status_code == 404


def test_anonymous_check_in_url_asks_to_log_in(client, scene):
    booking = f.create_booking(slot=scene[3])
    response = client.get(checkin.checkin_url(booking, external=False))
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_sign_in_sheet_for_the_branch_secretary_only(client, login, scene):
    _station, _host, _package, slot = scene
    secretary = f.create_secretary()
    booking = f.create_booking(slot=slot, organisation=secretary.organisation, status=BookingStatus.ATTENDED,
                               attended_headcount=3)
    login(f.create_secretary())
    assert client.get(f"/host/bookings/{booking.id}/sign-in-sheet.xlsx").status_code == 404
    login(secretary)
    response = client.get(f"/host/bookings/{booking.id}/sign-in-sheet.xlsx")
    sheet = load_workbook(io.BytesIO(response.data)).active
    assert sheet["A1"].value == "主题党日活动签到表"
    values = [row[0] for row in sheet.iter_rows(values_only=True)]
    assert "序号" in values and 3 in values and 4 not in values


def test_booking_checkin_partial_shows_qr_on_the_day_only(app, scene, frozen_now):
    from flask import render_template

    slot = scene[3]
    booking = f.create_booking(slot=slot)
    assert "<svg" not in render_template("host/_booking_checkin.html", booking=booking)
    frozen_now.set(slot.starts_at - timedelta(hours=1))
    html = render_template("host/_booking_checkin.html", booking=booking)
    assert "<svg" in html and "签到码" in html
    booking.status = BookingStatus.ATTENDED
    booking.attended_headcount = 8
    html = render_template("host/_booking_checkin.html", booking=booking)
    assert "<svg" not in html and f"/host/bookings/{booking.id}/sign-in-sheet.xlsx" in html


def test_host_capacity_not_a_number_gets_one_clear_message_and_nothing_changes(client, login):
    station = f.create_station()
    host = f.create_host(stations=[station])
    slot = f.create_slot(station=station, capacity=30)
    login(host)
    response = client.post(f"/host/slots/{slot.id}/capacity", data={"capacity": "三十"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "不是有效的整数" in html and "之间" not in html  # the parse error alone, not the range too
    db.session.refresh(slot)
    assert slot.capacity == 30


def test_roster_totals_confirmed_pending_waitlisted_full_page_and_fragment(client, login, scene):
    _station, host, _package, slot = scene
    f.create_booking(slot=slot, headcount=8)
    f.create_booking(slot=slot, headcount=6, status=BookingStatus.ATTENDED, attended_headcount=5)
    f.create_booking(slot=slot, headcount=4, status=BookingStatus.PENDING)
    f.create_booking(slot=slot, headcount=7, status=BookingStatus.WAITLISTED)
    f.create_booking(slot=slot, headcount=9, status=BookingStatus.CANCELLED)
    login(host)
    for headers in ({}, {"HX-Request": "true"}):
        html = client.get(f"/host/slots/{slot.id}/roster", headers=headers).get_data(as_text=True)
        assert ("<html" in html) is not bool(headers)
        totals = html[html.index('id="roster-totals"'):html.index('id="roster"')]
        assert "已确认" in totals and "14 人 · 2 批" in totals and "共 20 个名额" in totals
        assert "待审核" in totals and "4 人 · 1 批" in totals
        assert "候补" in totals and "7 人 · 1 批" in totals
        assert "5 人" in totals  # checked in
        assert "9 人" not in totals  # a cancelled booking counts nowhere


def test_roster_totals_counts_from_the_loaded_bookings_without_a_query(app_ctx, scene, count_queries):
    from blueprints.host import services

    slot = scene[3]
    f.create_booking(slot=slot, headcount=5, status=BookingStatus.NO_SHOW)
    f.create_booking(slot=slot, headcount=3, status=BookingStatus.DECLINED)
    bookings = services.roster(slot)
    with count_queries() as counter:
        totals = services.roster_totals(bookings)
    assert counter.count == 0
    assert (totals.confirmed.groups, totals.confirmed.people) == (1, 5)
    assert totals.pending.groups == totals.waitlisted.groups == totals.came == 0
