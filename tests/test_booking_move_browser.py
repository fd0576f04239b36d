"""Browser, phone width (390×844), with and without JavaScript: sec1 opens a booking, follows
改期, picks another slot of the package and lands on the booking page, moved."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from blueprints.accounts.models import User
from blueprints.booking import services
from blueprints.booking.capacity import availability
from blueprints.booking.models import Booking
from blueprints.catalog.models import Package, Slot, SlotStatus
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.demo.loader import load_demo

from .conftest import browser_login

pytestmark = pytest.mark.browser
HEADCOUNT = 5


def _booking_with_somewhere_to_go() -> int:
    """sec1's new booking of a demo slot whose package has another slot with room for it."""
    sec1 = db.session.scalar(sa.select(User).where(User.username == "sec1"))
    slots = db.session.scalars(
        sa.select(Slot).join(Package).where(
            Slot.status == SlotStatus.OPEN, Slot.starts_at > clock.now() + timedelta(days=4),
            Package.min_group_size <= HEADCOUNT, Package.max_group_size >= HEADCOUNT, Slot.max_groups.is_(None))
        .order_by(Slot.package_id, Slot.starts_at)).all()
    by_package: dict[int, list[Slot]] = {}
    for slot in slots:
        if availability(slot.id).remaining >= HEADCOUNT and not services.active_booking_of(sec1.organisation_id,
                                                                                            slot.id):
            by_package.setdefault(slot.package_id, []).append(slot)
    first = next(found[0] for found in by_package.values() if len(found) >= 2)
    request = services.BookingRequest(HEADCOUNT, "张书记", "13812345678")
    return services.book(sec1, first.id, request).id


def test_secretary_moves_a_booking_to_another_slot_on_a_phone(app, live_server, page_js_and_nojs, request):
    page = page_js_and_nojs
    js = request.node.callspec.params["page_js_and_nojs"] == "js"
    load_demo(branches=3, history=False)
    booking_id = _booking_with_somewhere_to_go()
    old_slot = db.session.get(Booking, booking_id).slot_id
    browser_login(page, live_server.url, "sec1", "partyday")

    page.goto(f"{live_server.url}/bookings/{booking_id}")
    page.get_by_role("link", name="改期").click()
    page.wait_for_url(f"**/bookings/{booking_id}/move")
    expect(page.locator("h1")).to_have_text("改期")
    expect(page.locator(".move-current")).to_have_attribute("data-slot-id", str(old_slot))
    choice = page.locator("input[name=slot_id]:not([disabled])").first
    target = choice.get_attribute("value")
    page.locator(f"label:has(input[value='{target}'])").click()  # the whole line is the control
    expect(choice).to_be_checked()
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="改期至所选场次").click()
    # htmx posts the form itself and follows HX-Location; without JavaScript, post/redirect/get
    assert answer.value.status == (204 if js else 303)

    page.wait_for_url(f"**/bookings/{booking_id}")
    expect(page.get_by_role("status").filter(has_text="已改期至")).to_be_visible()
    expect(page.locator("[data-action=moved]")).to_have_text("已改期")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    db.session.rollback()  # end the test's read transaction: the server committed since
    assert db.session.get(Booking, booking_id).slot_id == int(target) != old_slot


def test_secretary_sending_no_slot_sees_why_at_the_field(app, live_server, page_js_and_nojs):
    page = page_js_and_nojs
    load_demo(branches=3, history=False)
    booking_id = _booking_with_somewhere_to_go()
    browser_login(page, live_server.url, "sec1", "partyday")
    page.goto(f"{live_server.url}/bookings/{booking_id}/move")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="改期至所选场次").click()
    assert answer.value.status == 422
    expect(page.locator("#slot_id-error")).to_have_text("请选择要改期到的场次。")
    assert page.url.endswith(f"/bookings/{booking_id}/move")
