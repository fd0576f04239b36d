"""Browser: host1 creates a recurring series (preview, save); a branch books; host1 approves and
checks the group in through the check-in URL, on a phone-sized page."""
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

from .conftest import browser_login

pytestmark = pytest.mark.browser


def test_host_series_booking_approval_and_check_in(live_server, page, frozen_now):
    load_demo(branches=3)
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
