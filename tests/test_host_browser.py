"""Browser: host1 creates a recurring series (preview, save); a branch books; host1 approves and
checks the group in through the check-in URL, on a phone-sized page."""
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from blueprints.accounts.models import User
from blueprints.booking import services as booking_services
from blueprints.booking.models import Booking, BookingStatus
from blueprints.catalog.models import Slot
from blueprints.core.extensions import db
from blueprints.demo.loader import load_demo
from blueprints.host.checkin import checkin_url

from . import factories as f
from .conftest import browser_login

pytestmark = pytest.mark.browser


def test_host_series_booking_approval_and_check_in(live_server, page, frozen_now):
    load_demo(branches=3, history=False)
    host = db.session.scalar(sa.select(User).where(User.username == "host1"))
    station = host.stations[0]
    station.requires_approval = True
    db.session.commit()
    before = db.session.scalar(sa.select(sa.func.count(Slot.id)))

    browser_login(page, live_server.url, "host1", "partyday")
    page.goto(live_server.url + "/host/")
    page.get_by_role("link", name="批量生成场次").click()
    page.locator("#weekdays-2").check()  # Wednesday
    page.locator("#first_day").fill("2026-12-28")
    page.locator("#last_day").fill("2027-01-10")
    page.locator("#weekdays-4").check()  # Friday: 1 January is 元旦 and is skipped
    page.locator("#times").fill("09:00")
    page.locator("#capacity").fill("30")
    page.get_by_role("button", name="预览日期").click()
    preview = page.locator("#preview")
    preview.wait_for()
    assert "已跳过：元旦" in preview.inner_text()
    assert db.session.scalar(sa.select(sa.func.count(Slot.id))) == before
    page.get_by_role("button", name="保存这些场次").click()
    page.wait_for_url("**/host/")
    db.session.rollback()
    series = db.session.scalars(sa.select(Slot).where(Slot.series_id.is_not(None)).order_by(Slot.starts_at)).all()
    assert len(series) == 3  # Wed 30 Dec, Wed 6 Jan, Fri 8 Jan
    assert len({s.series_id for s in series}) == 1

    secretary = db.session.scalar(sa.select(User).where(User.username == "sec1"))
    booking = booking_services.book(secretary, series[0].id, booking_services.BookingRequest(12, "王书记", "13900000001"))
    assert booking.status is BookingStatus.PENDING

    page.goto(live_server.url + "/host/approvals")
    card = page.locator(f"#booking-{booking.id}")
    card.get_by_role("button", name="审核通过").click()
    page.locator(f"#booking-{booking.id}").wait_for(state="detached")
    assert "已通过" in page.locator(".flashes").inner_text()
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status is BookingStatus.CONFIRMED

    frozen_now.set(series[0].starts_at - timedelta(minutes=30))
    page.goto(live_server.url + checkin_url(booking, external=False))
    assert page.get_by_role("heading", name=booking.organisation.name).is_visible()
    page.get_by_label("实到人数").fill("11")
    page.get_by_role("button", name="确认签到").click()
    page.wait_for_url(f"**/host/slots/{series[0].id}/check-in")
    assert "已签到：11 人" in page.locator("#checkin-list").inner_text()
    db.session.rollback()
    booking = db.session.get(Booking, booking.id)
    assert booking.status is BookingStatus.ATTENDED and booking.attended_headcount == 11


def _visible(page, selector: str) -> bool:
    return page.locator(selector).is_visible()


def test_host_series_form_shows_the_chosen_pattern_and_creating_redirects_on_a_phone(
        live_server, page_js_and_nojs, frozen_now):
    """At 390×844, with JavaScript on and off: the series form shows only the chosen pattern's
    fields, the preview sits above 保存, and saving a series or a slot lands on its page (the
    address bar says so; a reload shows it again and creates nothing)."""
    page = page_js_and_nojs
    station = f.create_station(name="七宝老街党群服务站")
    host = f.create_host(stations=[station])
    f.create_package(stations=[station], title="四史微党课")
    browser_login(page, live_server.url, host.username, f.PASSWORD)

    page.goto(live_server.url + "/host/series/new")
    assert _visible(page, "#field-weekdays") and not _visible(page, "#field-month-day")
    page.get_by_label("每月（选定的第几周、星期几）").check()
    assert _visible(page, "#field-month-day") and not _visible(page, "#field-weekdays")
    page.get_by_label("每季度第三个月（选定的第几周、星期几）").check()
    assert _visible(page, "#field-month-day") and not _visible(page, "#field-weekdays")
    page.get_by_label("每周（选定的星期几）").check()
    assert _visible(page, "#field-weekdays") and not _visible(page, "#field-month-day")

    page.locator("#weekdays-4").check()  # Friday: 1 January (元旦) is skipped, 8 January kept
    page.locator("#first_day").fill("2026-12-28")
    page.locator("#last_day").fill("2027-01-10")
    page.locator("#times").fill("09:00")
    page.locator("#capacity").fill("30")
    page.get_by_role("button", name="预览日期").click()
    page.locator("#preview").wait_for()
    assert "已跳过：元旦" in page.locator("#preview").inner_text()
    assert _visible(page, "#field-weekdays") and not _visible(page, "#field-month-day")  # the choice kept
    save = page.get_by_role("button", name="保存这些场次")
    preview_box, save_box = page.locator("#preview").bounding_box(), save.bounding_box()
    assert preview_box["y"] + preview_box["height"] <= save_box["y"]  # the preview above 保存
    save.click()
    page.wait_for_url(live_server.url + "/host/")
    assert "已创建 1 个场次（1月8日周五）" in page.locator(".flashes").inner_text()
    page.reload()
    assert page.url == live_server.url + "/host/"
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count(Slot.id)).where(Slot.series_id.is_not(None))) == 1

    page.goto(live_server.url + "/host/slots/new")
    page.locator("#day").fill("2026-12-01")
    page.locator("#start").fill("14:00")
    page.locator("#end").fill("16:00")
    page.locator("#capacity").fill("25")
    page.get_by_role("button", name="创建场次").click()
    page.wait_for_url(re.compile(r"/host/slots/\d+$"))
    db.session.rollback()
    slot = db.session.scalar(sa.select(Slot).where(Slot.capacity == 25))
    assert page.url == f"{live_server.url}/host/slots/{slot.id}"
    assert "场次已创建" in page.locator(".flashes").inner_text()
    assert page.get_by_role("heading", level=1).inner_text() == "12月1日周二 14:00–16:00"
    page.reload()
    assert page.url == f"{live_server.url}/host/slots/{slot.id}"
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count(Slot.id)).where(Slot.capacity == 25)) == 1


def test_host_decline_error_leaves_the_button_beside_the_reason_on_a_phone(live_server, page_js_and_nojs, frozen_now):
    """At 390×844: 不通过 without a reason shows the error below the field, and the button stays
    on the field's line (it used to drop below the error); the note and request time are shown."""
    page = page_js_and_nojs
    station = f.create_station(requires_approval=True)
    host = f.create_host(stations=[station])
    slot = f.create_slot(package=f.create_package(stations=[station]), station=station)
    booking = f.create_booking(slot=slot, status=BookingStatus.PENDING, note="请准备投影仪")
    browser_login(page, live_server.url, host.username, f.PASSWORD)
    page.goto(live_server.url + "/host/approvals")
    card = page.locator(f"#booking-{booking.id}")
    assert "请准备投影仪" in card.inner_text() and "申请时间" in card.inner_text()
    card.get_by_role("button", name="不通过").click()
    error = page.locator(f"#reason-{booking.id}-error")
    error.wait_for()
    assert "请向支部说明原因" in error.inner_text()
    field = page.locator(f"#reason-{booking.id}").bounding_box()
    button = page.locator(f"#booking-{booking.id}").get_by_role("button", name="不通过").bounding_box()
    assert abs((field["y"] + field["height"] / 2) - (button["y"] + button["height"] / 2)) < 2
    assert button["x"] + button["width"] <= 390 and error.bounding_box()["y"] >= field["y"] + field["height"]
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status is BookingStatus.PENDING
