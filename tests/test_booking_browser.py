"""Browser: sec1 books a slot, sees the places left drop, cancels, and sees them return.

With JavaScript the slot page never reloads (htmx swaps the panel, the places badge refreshes on
the booking-changed trigger and by polling); without JavaScript the same flow works through plain
form posts and redirects.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from blueprints.booking.capacity import availability
from blueprints.catalog.models import Package, Slot, SlotStatus, Station
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.demo.loader import load_demo

from .conftest import browser_login

pytestmark = pytest.mark.browser

HEADCOUNT = 5


def _bookable_slot() -> tuple[int, int]:
    """A demo slot sec1 can book 5 people into and cancel online: (slot id, places left)."""
    candidates = db.session.scalars(
        sa.select(Slot)
        .join(Package).join(Station, Slot.station_id == Station.id)
        .where(Slot.status == SlotStatus.OPEN, Slot.starts_at > clock.now() + timedelta(days=4),
               Package.min_group_size <= HEADCOUNT, Package.max_group_size >= HEADCOUNT,
               Slot.max_groups.is_(None))
        .order_by(Slot.starts_at)
    ).all()
    for slot in candidates:
        remaining = availability(slot.id).remaining
        if remaining >= 2 * HEADCOUNT:
            return slot.id, remaining
    raise AssertionError("the demo data has no bookable slot")


def _remaining(page) -> int:
    return int(page.locator("[data-remaining]").first.get_attribute("data-remaining"))


def _fill_booking_form(page) -> None:
    page.get_by_label("参加人数").fill(str(HEADCOUNT))
    page.get_by_label("联系人").fill("张书记")
    page.get_by_label("联系电话").fill("13812345678")


def _cancel_on_detail_page(page) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_label("取消原因").fill("支部活动改期")
    page.get_by_role("button", name="取消预约").click()
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "cancelled")


def test_secretary_books_and_cancels_and_places_follow_without_reload(app, live_server, browser):
    app.config["PLACES_POLL_SECONDS"] = 1
    load_demo(branches=3, history=False)
    slot_id, before = _bookable_slot()
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(10_000)
    page = context.new_page()
    browser_login(page, live_server.url, "sec1", "partyday")

    page.goto(f"{live_server.url}/slots/{slot_id}")
    assert _remaining(page) == before
    page.evaluate("window.__sameDocument = true")
    _fill_booking_form(page)
    page.locator("#booking-panel button[type=submit]").click()

    expect(page.locator("#booking-panel")).to_contain_text("本支部的预约")  # sec1 books for a 党支部
    expect(page.locator("[data-remaining]").first).to_have_attribute("data-remaining", str(before - HEADCOUNT))
    expect(page.locator("#unread-badge")).to_have_text("1")  # updated out of band
    assert page.evaluate("window.__sameDocument") is True, "the slot page reloaded"

    detail = context.new_page()
    detail.goto(live_server.url + page.locator("#booking-panel a.button").get_attribute("href"))
    _cancel_on_detail_page(detail)
    detail.close()

    page.bring_to_front()
    expect(page.locator("[data-remaining]").first).to_have_attribute("data-remaining", str(before))
    assert page.evaluate("window.__sameDocument") is True, "the slot page reloaded"
    context.close()


def test_secretary_books_and_cancels_with_javascript_off(app, live_server, browser):
    load_demo(branches=3, history=False)
    slot_id, before = _bookable_slot()
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    context.set_default_timeout(10_000)
    page = context.new_page()
    browser_login(page, live_server.url, "sec1", "partyday")

    page.goto(f"{live_server.url}/slots/{slot_id}")
    assert _remaining(page) == before
    _fill_booking_form(page)
    page.locator("#booking-panel button[type=submit]").click()
    page.wait_for_url("**/bookings/*")
    assert page.locator("[data-status]").get_attribute("data-status") in {"confirmed", "pending"}
    booking_url = page.url

    page.goto(f"{live_server.url}/slots/{slot_id}")
    assert _remaining(page) == before - HEADCOUNT

    page.goto(booking_url)
    page.get_by_label("取消原因").fill("支部活动改期")
    page.get_by_role("button", name="取消预约").click()
    page.wait_for_load_state()
    assert page.locator("[data-status]").get_attribute("data-status") == "cancelled"

    page.goto(f"{live_server.url}/slots/{slot_id}")
    assert _remaining(page) == before
    context.close()


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_secretary_sees_a_too_large_group_and_a_bad_phone_in_one_round(app, live_server, browser, js):
    """Issue 14: the phone error no longer hides the group-size error until the next try."""
    load_demo(branches=3, history=False)
    slot_id, _before = _bookable_slot()
    context = browser.new_context(java_script_enabled=js, viewport={"width": 390, "height": 844})
    context.set_default_timeout(10_000)
    page = context.new_page()
    browser_login(page, live_server.url, "sec1", "partyday")
    page.goto(f"{live_server.url}/slots/{slot_id}")
    expect(page.locator("#booking-panel h2")).to_have_text("为本支部预约")
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("参加人数").fill("999")
    page.get_by_label("联系电话").fill("12345")
    page.locator("#booking-panel button[type=submit]").click()
    expect(page.locator("#headcount-error")).to_contain_text("该服务包每批接待")
    expect(page.locator("#contact_phone-error")).to_contain_text("请填写11位手机号码或带区号的固定电话")
    assert page.get_by_label("参加人数").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("联系电话").get_attribute("aria-invalid") == "true"
    if js:
        assert page.evaluate("window.__sameDocument") is True, "htmx did not swap the panel"
    context.close()
