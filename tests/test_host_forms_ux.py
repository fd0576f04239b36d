"""The host's forms and pages after the phone walk-through (issue 14): the series form shows the
chosen pattern's fields and its preview above 保存; creating redirects to what was created
(post/redirect/get, HX-Location for htmx); one capacity field; check-in by one rule
(``Slot.check_in_opens_at``: 00:00 Shanghai time on the slot's day); approvals with note and
request time; the glossary's words (批, 本场次全部预约)."""
import json
import re
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from blueprints.booking import services as booking_services
from blueprints.booking.models import Booking, BookingStatus
from blueprints.catalog.models import Slot
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.host import checkin

from . import factories as f

SLOT_DAY = date(2026, 12, 5)  # a Saturday, twelve days after the frozen "now"
OPENS = clock.local_datetime(SLOT_DAY, 0).astimezone(timezone.utc)  # 2026-12-04 16:00 UTC
JUST_BEFORE = OPENS - timedelta(minutes=1)  # 23:59 on the day before, Shanghai time
HX = {"HX-Request": "true"}


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return clock.local_datetime(day, hour, minute).astimezone(timezone.utc)


@pytest.fixture
def scene(frozen_now):
    station = f.create_station(requires_approval=True, name="七宝老街党群服务站")
    host = f.create_host(stations=[station])
    package = f.create_package(stations=[station], title="四史微党课")
    slot = f.create_slot(package=package, station=station, capacity=20, starts_at=local(SLOT_DAY, 9),
                         ends_at=local(SLOT_DAY, 11))
    return station, host, package, slot


def html_of(response) -> str:
    return response.get_data(as_text=True)


# -- check-in: the one rule ---------------------------------------------------------------------

@pytest.mark.parametrize("starts,now,is_open", [
    (local(SLOT_DAY, 9), JUST_BEFORE, False),  # 23:59 the day before
    (local(SLOT_DAY, 9), OPENS, True),  # 00:00 on the day
    (local(SLOT_DAY, 9), local(SLOT_DAY, 8, 59), True),
    (local(SLOT_DAY, 9), local(SLOT_DAY, 23, 59), True),
    (local(SLOT_DAY, 9), local(SLOT_DAY + timedelta(days=3), 12), True),  # no closing time
    (local(SLOT_DAY, 0, 30), JUST_BEFORE, False),  # a slot just after midnight: 30 minutes
    (local(SLOT_DAY, 0, 30), OPENS, True),
    (local(SLOT_DAY, 23, 30), local(SLOT_DAY - timedelta(days=1), 23, 30), False),  # not 24 h before
])
def test_check_in_opens_at_midnight_shanghai_time_on_the_slot_day(app_ctx, starts, now, is_open):
    slot = Slot(starts_at=starts, ends_at=starts + timedelta(hours=1), capacity=10)
    assert slot.check_in_opens_at == OPENS
    assert slot.check_in_is_open(now) is is_open


def test_check_in_rule_reads_the_clock_when_no_time_is_given(scene, frozen_now):
    slot = scene[3]
    frozen_now.set(JUST_BEFORE)
    assert slot.check_in_is_open() is False
    frozen_now.set(OPENS)
    assert slot.check_in_is_open() is True


@pytest.mark.parametrize("now,recorded", [(JUST_BEFORE, False), (OPENS, True)])
def test_booking_services_check_in_follows_the_rule(scene, frozen_now, now, recorded):
    _station, host, _package, slot = scene
    booking = f.create_booking(slot=slot, headcount=10)
    frozen_now.set(now)
    if recorded:
        booking_services.check_in(host, booking.id, 9)
    else:
        with pytest.raises(booking_services.BookingError) as refused:
            booking_services.check_in(host, booking.id, 9)
        assert "活动当天才能签到" in refused.value.message
    db.session.expire_all()
    stored = db.session.get(Booking, booking.id)
    assert (stored.status is BookingStatus.ATTENDED) is recorded
    assert stored.attended_headcount == (9 if recorded else None)


@pytest.mark.parametrize("now,shown", [
    (JUST_BEFORE, False), (OPENS, True), (local(SLOT_DAY, 23, 59), True),
    (local(SLOT_DAY + timedelta(days=1), 0), False),  # the code is for the day itself
])
def test_branch_check_in_code_shows_from_the_opening_to_the_end_of_the_day(scene, frozen_now, now, shown):
    booking = f.create_booking(slot=scene[3])
    frozen_now.set(now)
    assert checkin.shows_qr(booking) is shown


CHECKIN_PAGES = ["", "/roster", "/check-in"]


@pytest.mark.parametrize("suffix", CHECKIN_PAGES)
@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
def test_host_pages_say_when_check_in_opens_until_it_opens_then_offer_the_button(
        client, login, scene, frozen_now, suffix, headers):
    _station, host, _package, slot = scene
    booking = f.create_booking(slot=slot, headcount=10)
    token_url = checkin.checkin_url(booking, external=False)
    login(host)
    frozen_now.set(JUST_BEFORE)
    before = html_of(client.get(f"/host/slots/{slot.id}{suffix}", headers=headers))
    assert ("<html" in before) is not bool(headers)
    shows_action = not (suffix == "/roster" and headers)  # the roster's fragment is its table only
    if shows_action:
        assert "签到将于 12月5日 开放" in before
    assert f'href="/host/slots/{slot.id}/check-in"' not in before
    assert token_url not in before  # no organisation to tap before check-in opens
    frozen_now.set(OPENS)
    after = html_of(client.get(f"/host/slots/{slot.id}{suffix}", headers=headers))
    assert "签到将于" not in after
    if suffix == "/check-in":
        assert token_url in after
    elif shows_action:
        assert f'href="/host/slots/{slot.id}/check-in"' in after


def test_host_dashboard_cards_say_when_check_in_opens(client, login, scene, frozen_now):
    _station, host, package, slot = scene
    today_slot = f.create_slot(package=package, station=slot.station, starts_at=clock.now() + timedelta(hours=2))
    login(host)
    html = html_of(client.get("/host/"))
    assert "签到将于 12月5日 开放" in html
    assert f'href="/host/slots/{today_slot.id}/check-in"' in html  # today's slot: open
    assert f'href="/host/slots/{slot.id}/check-in"' not in html


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
def test_host_check_in_url_before_it_opens_shows_the_day_and_no_button(client, login, scene, frozen_now, headers):
    _station, host, _package, slot = scene
    booking = f.create_booking(slot=slot, headcount=10)
    url = checkin.checkin_url(booking, external=False)
    login(host)
    frozen_now.set(JUST_BEFORE)
    html = html_of(client.get(url, headers=headers))
    assert "签到将于 12月5日 开放" in html and "确认签到" not in html and 'name="attended_headcount"' not in html
    refused = client.post(url, data={"attended_headcount": 9}, headers=headers)
    assert refused.status_code == 422 and "活动当天才能签到" in html_of(refused)
    assert db.session.get(Booking, booking.id).status is BookingStatus.CONFIRMED
    frozen_now.set(OPENS)
    html = html_of(client.get(url, headers=headers))
    assert "签到将于" not in html and "确认签到" in html and "本场次全部预约" in html


def test_other_station_host_gets_404_on_the_check_in_list_and_sees_no_opening_day(client, login, scene, frozen_now):
    login(f.create_host(stations=[f.create_station()]))
    response = client.get(f"/host/slots/{scene[3].id}/check-in")
    assert response.status_code == 404 and "签到将于" not in html_of(response)


# -- the series form ----------------------------------------------------------------------------

def series_data(station, package, **changes):
    data = {"station": station.id, "package": package.id, "kind": "weekly", "weekdays": ["4"],
            "week_of_month": "1", "weekday": "0", "first_day": "2026-12-28", "last_day": "2027-01-10",
            "times": "09:00，14:00", "duration_minutes": "120", "capacity": "30", "action": "preview"}
    data.update(changes)
    return data


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
def test_host_series_form_marks_each_patterns_fields_for_css_to_show_only_the_chosen_one(
        client, login, scene, headers):
    login(scene[1])
    html = html_of(client.get("/host/series/new", headers=headers))
    assert ("<html" in html) is not bool(headers)
    form = html[html.index('class="panel host-form series-form"'):]
    assert re.search(r'<input[^>]*checked[^>]*value="weekly"|<input[^>]*value="weekly"[^>]*checked', form)
    weekly = form[form.index("pattern-weekly"):form.index("pattern-monthly")]
    monthly = form[form.index("pattern-monthly"):form.index('id="first_day"')]
    assert 'name="weekdays"' in weekly and 'name="week_of_month"' not in weekly
    assert 'name="week_of_month"' in monthly and 'name="weekday"' in monthly and 'name="weekdays"' not in monthly
    with open(client.application.static_folder + "/css/app.css", encoding="utf-8") as css:
        rules = css.read()
    assert '.series-form:has(input[name="kind"][value="weekly"]:checked) .pattern-monthly' in rules
    assert '.series-form:has(input[name="kind"]:not([value="weekly"]):checked) .pattern-weekly' in rules


@pytest.mark.parametrize("kind,hidden_junk", [
    ("monthly", {"weekdays": ["9"]}),  # the weekly checkboxes are hidden: not checked
    ("quarterly", {"weekdays": ["x"]}),
    ("weekly", {"weekday": "x", "week_of_month": "7"}),  # the monthly selects are hidden
])
def test_host_series_preview_ignores_the_fields_of_the_pattern_not_chosen(client, login, scene, kind, hidden_junk):
    station, host, package, _slot = scene
    login(host)
    data = series_data(station, package, kind=kind, last_day="2027-06-30", **hidden_junk)
    response = client.post("/host/series/new", data=data)
    html = html_of(response)
    assert response.status_code == 200, html
    assert 'id="preview"' in html and 'role="alert"' not in html


def test_host_series_weekly_without_a_weekday_is_still_refused(client, login, scene):
    station, host, package, _slot = scene
    login(host)
    response = client.post("/host/series/new", data=series_data(station, package, weekdays=[]))
    assert response.status_code == 422 and "请至少选择一个星期几" in html_of(response)


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
def test_host_series_preview_sits_above_the_save_button(client, login, scene, headers):
    station, host, package, _slot = scene
    login(host)
    html = html_of(client.post("/host/series/new", data=series_data(station, package), headers=headers))
    assert ("<html" in html) is not bool(headers)
    form = html[html.index('class="panel host-form series-form"'):]
    form = form[:form.index("</form>")]
    assert 'id="preview"' in form  # inside the form, before its buttons
    assert form.index('id="preview"') < form.index('value="preview"') < form.index('value="save"')
    assert "已跳过：元旦" in form
    assert 'formaction="/host/series/new#preview"' in form  # no JS: the answer opens at the preview


def test_host_series_save_redirects_to_the_dashboard_with_the_count_and_days(client, login, scene):
    station, host, package, _slot = scene
    login(host)
    saved = client.post("/host/series/new", data=series_data(station, package, action="save"))
    assert saved.status_code == 303 and saved.headers["Location"] == "/host/"
    assert db.session.scalar(sa.select(sa.func.count(Slot.id)).where(Slot.series_id.is_not(None))) == 2
    page = html_of(client.get("/host/"))
    assert "已创建 2 个场次（1月8日周五）" in page


def test_host_series_save_by_htmx_sends_hx_location_to_the_dashboard(client, login, scene):
    station, host, package, _slot = scene
    login(host)
    saved = client.post("/host/series/new", data=series_data(station, package, action="save", weekdays=["2", "4"]),
                        headers={**HX, "HX-Boosted": "true"})
    assert saved.status_code == 204 and saved.get_data() == b""
    location = json.loads(saved.headers["HX-Location"])
    assert location == {"path": "/host/", "target": "body", "headers": {"HX-Boosted": "true"}}
    followed = html_of(client.get(location["path"], headers={**HX, **location["headers"]}))
    assert "<html" in followed and "已创建 6 个场次（12月30日周三 至 1月8日周五）" in followed


def test_secretary_cannot_create_a_series_and_nothing_is_created(client, login, scene):
    station, _host, package, _slot = scene
    login(f.create_secretary())
    response = client.post("/host/series/new", data=series_data(station, package, action="save"))
    assert response.status_code == 403
    assert db.session.scalar(sa.select(sa.func.count(Slot.id))) == 1


def test_other_station_host_cannot_create_a_series_at_this_station(client, login, scene):
    station, _host, package, _slot = scene
    login(f.create_host(stations=[f.create_station()]))
    response = client.post("/host/series/new", data=series_data(station, package, action="save"), headers=HX)
    assert response.status_code == 422 and "HX-Location" not in response.headers
    assert db.session.scalar(sa.select(sa.func.count(Slot.id))) == 1


# -- a new slot ---------------------------------------------------------------------------------

def slot_data(station, package, **changes):
    data = {"station": station.id, "package": package.id, "day": "2026-12-01", "start": "14:00",
            "end": "16:00", "capacity": "25"}
    data.update(changes)
    return data


def test_host_new_slot_redirects_to_the_created_slot(client, login, scene):
    station, host, package, _slot = scene
    login(host)
    response = client.post("/host/slots/new", data=slot_data(station, package))
    slot = db.session.scalar(sa.select(Slot).where(Slot.capacity == 25))
    assert response.status_code == 303 and response.headers["Location"] == f"/host/slots/{slot.id}"
    page = html_of(client.get(response.headers["Location"]))
    assert "场次已创建" in page and "12月1日周二 14:00–16:00" in page


def test_host_new_slot_by_htmx_sends_hx_location_and_creates_once(client, login, scene):
    station, host, package, _slot = scene
    login(host)
    response = client.post("/host/slots/new", data=slot_data(station, package), headers={**HX, "HX-Boosted": "true"})
    slot = db.session.scalar(sa.select(Slot).where(Slot.capacity == 25))
    assert response.status_code == 204
    location = json.loads(response.headers["HX-Location"])
    assert location["path"] == f"/host/slots/{slot.id}" and location["target"] == "body"
    followed = html_of(client.get(location["path"], headers={**HX, **location["headers"]}))
    assert "<html" in followed and "场次已创建" in followed
    assert db.session.scalar(sa.select(sa.func.count(Slot.id)).where(Slot.capacity == 25)) == 1


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
def test_host_new_slot_bad_input_is_422_with_the_form_and_no_redirect(client, login, scene, headers):
    station, host, package, _slot = scene
    login(host)
    response = client.post("/host/slots/new", data=slot_data(station, package, end="13:00"), headers=headers)
    html = html_of(response)
    assert response.status_code == 422 and "HX-Location" not in response.headers
    assert ("<html" in html) is not bool(headers) and "结束时间必须晚于开始时间" in html
    assert db.session.scalar(sa.select(sa.func.count(Slot.id))) == 1


def test_other_station_host_cannot_create_a_slot_at_this_station(client, login, scene):
    station, _host, package, _slot = scene
    login(f.create_host(stations=[f.create_station()]))
    response = client.post("/host/slots/new", data=slot_data(station, package))
    assert response.status_code == 422
    assert db.session.scalar(sa.select(sa.func.count(Slot.id))) == 1


# -- one capacity field -------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
def test_host_slot_page_has_one_capacity_field(client, login, scene, headers):
    _station, host, _package, slot = scene
    f.create_booking(slot=slot, headcount=12)
    login(host)
    html = html_of(client.get(f"/host/slots/{slot.id}", headers=headers))
    assert ("<html" in html) is not bool(headers)
    assert len(re.findall(r'name="capacity"', html)) == 1
    assert f"/host/slots/{slot.id}/capacity" not in html
    assert "不能低于已预约的 12 人" in html  # the hint on that one field


def test_host_edits_capacity_in_the_one_form_and_a_refusal_shows_on_that_field(client, login, scene):
    _station, host, _package, slot = scene
    f.create_booking(slot=slot, headcount=12)
    login(host)
    fields = {"day": "2026-12-05", "start": "09:00", "end": "11:00", "max_groups": "", "note": ""}
    refused = client.post(f"/host/slots/{slot.id}/edit", data=dict(fields, capacity="10"), headers=HX)
    html = html_of(refused)
    assert refused.status_code == 422 and "<html" not in html
    assert len(re.findall(r'name="capacity"', html)) == 1
    assert "名额不能低于已预约的 12 人" in html[html.index('id="capacity-error"'):][:200]
    assert db.session.get(Slot, slot.id).capacity == 20
    assert client.post(f"/host/slots/{slot.id}/edit", data=dict(fields, capacity="40")).status_code == 302
    assert db.session.get(Slot, slot.id).capacity == 40


def test_capacity_route_refusal_lands_on_the_one_capacity_field(client, login, scene):
    _station, host, _package, slot = scene
    f.create_booking(slot=slot, headcount=12)
    login(host)
    response = client.post(f"/host/slots/{slot.id}/capacity", data={"capacity": "10"})
    html = html_of(response)
    assert response.status_code == 422 and len(re.findall(r'name="capacity"', html)) == 1
    assert re.search(r'name="capacity"[^>]*value="10"|value="10"[^>]*name="capacity"', html)
    assert "名额不能低于已预约的 12 人" in html[html.index('id="capacity-error"'):][:200]


# -- approvals ----------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
def test_host_approvals_show_note_and_request_time(client, login, scene, frozen_now, headers):
    _station, host, _package, slot = scene
    noted = f.create_booking(slot=slot, headcount=8, status=BookingStatus.PENDING, note="请准备投影仪",
                             created_at=datetime(2026, 11, 22, 6, 5, tzinfo=timezone.utc))
    plain = f.create_booking(slot=slot, headcount=6, status=BookingStatus.PENDING)
    login(host)
    html = html_of(client.get("/host/approvals", headers=headers))
    assert ("<html" in html) is not bool(headers)
    first = html[html.index(f'id="booking-{noted.id}"'):html.index(f'id="booking-{plain.id}"')]
    assert "备注" in first and "请准备投影仪" in first
    assert "申请时间" in first and "11月22日周日 14:05" in first
    second = html[html.index(f'id="booking-{plain.id}"'):]
    assert "备注" in second and '<span class="meta">无</span>' in second


def test_other_station_host_does_not_see_the_pending_note(client, login, scene):
    f.create_booking(slot=scene[3], status=BookingStatus.PENDING, note="只给本站看的备注")
    login(f.create_host(stations=[f.create_station()]))
    assert "只给本站看的备注" not in html_of(client.get("/host/approvals"))


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
def test_host_decline_without_reason_keeps_the_button_beside_the_field(client, login, scene, headers):
    _station, host, _package, slot = scene
    booking = f.create_booking(slot=slot, status=BookingStatus.PENDING)
    login(host)
    response = client.post(f"/host/bookings/{booking.id}/decline", data={"reason": ""}, headers=headers)
    html = html_of(response)
    assert response.status_code == 422 and ("<html" in html) is not bool(headers)
    form = html[html.index('class="decline-form field has-error"'):]
    form = form[:form.index("</form>")]
    row = form[form.index('class="decline-row"'):form.index('id="reason-%d-error"' % booking.id)]
    assert 'id="reason-%d"' % booking.id in row and "不通过</button>" in row  # field and button in one row
    assert "请向支部说明原因" in form[form.index('id="reason-%d-error"' % booking.id):]  # the error below them
    assert db.session.get(Booking, booking.id).status is BookingStatus.PENDING


# -- glossary -----------------------------------------------------------------------------------

def test_host_pages_count_groups_in_批_and_never_say_团体(client, login, scene, frozen_now):
    station, host, package, slot = scene
    crowded = f.create_slot(package=package, station=station, max_groups=1, starts_at=clock.now() + timedelta(days=3))
    f.create_booking(slot=crowded, headcount=2)
    f.create_booking(slot=crowded, headcount=2)
    booking = f.create_booking(slot=slot, headcount=5)
    f.create_booking(slot=slot, headcount=4, status=BookingStatus.PENDING)
    login(host)
    pages = {path: html_of(client.get(path)) for path in [
        "/host/", "/host/approvals", "/host/slots/new", "/host/series/new"]}
    frozen_now.set(OPENS)  # the slot's day: check-in open
    pages.update({path: html_of(client.get(path)) for path in [
        f"/host/slots/{slot.id}", f"/host/slots/{slot.id}/roster", f"/host/slots/{slot.id}/check-in",
        checkin.checkin_url(booking, external=False)]})
    for path, html in pages.items():
        assert "团体" not in html and " 组" not in html, path
    assert "2 批 / 1" in pages["/host/"] and "已有 2 批，超过上限 1 批" in pages["/host/"]
    assert "批数上限" in pages["/host/slots/new"] and "留空表示不限批数" in pages["/host/series/new"]
    assert "5 人 · 1 批" in pages[f"/host/slots/{slot.id}/roster"]
    assert "本场次全部预约" in pages[checkin.checkin_url(booking, external=False)]
