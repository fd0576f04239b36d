"""Browser, on a phone (390×844), with and without JavaScript: sec1 finds a past attended session
under 待评价, rates it with the keyboard and a comment, sees the rating on the booking; host1
sees it on /host/feedback."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from blueprints.accounts.models import User
from blueprints.booking.models import BookingFeedback, BookingStatus
from blueprints.catalog.models import Package
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.demo.loader import load_demo

from . import factories as f
from .conftest import browser_login

pytestmark = pytest.mark.browser


def _attended_session_of_sec1() -> int:
    users = {u.username: u for u in db.session.scalars(sa.select(User).where(User.username.in_(["sec1", "host1"])))}
    station = users["host1"].stations[0]
    package = db.session.scalars(sa.select(Package).where(Package.stations.contains(station))
                                 .order_by(Package.id)).first()
    slot = f.create_slot(package=package, station=station, starts_at=clock.now() - timedelta(days=2))
    headcount = max(package.min_group_size, 8)
    booking = f.create_booking(slot=slot, organisation=users["sec1"].organisation, headcount=headcount,
                               status=BookingStatus.ATTENDED, attended_headcount=headcount)
    return booking.id


def test_secretary_rates_a_past_session_and_the_host_sees_it(app, live_server, page_js_and_nojs):
    page = page_js_and_nojs
    load_demo(branches=3, history=False)
    booking_id = _attended_session_of_sec1()
    base = live_server.url
    browser_login(page, base, "sec1", "partyday")

    page.goto(base + "/bookings")
    prompt = page.locator("#awaiting-feedback")
    expect(prompt).to_contain_text("待评价")
    prompt.locator(f'li[data-booking-id="{booking_id}"] a').click()
    page.wait_for_url(f"**/bookings/{booking_id}*")
    block = page.locator("#booking-feedback")
    expect(block.locator("legend")).to_have_text("本支部对本场次满意吗？")

    # Sent without a choice: the message at the fieldset, nothing stored.
    block.get_by_role("button", name="提交评价").click()
    expect(page.locator("#rating-error")).to_have_text("请选择 1 到 5 分中的一项评分。")
    db.session.rollback()  # read what the server committed, not this session's snapshot
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BookingFeedback)) == 0

    # By keyboard: 5 分 first, then the arrow key moves to 4 分.
    page.get_by_label("5 分 非常满意").focus()
    page.keyboard.press("Space")
    page.keyboard.press("ArrowDown")
    expect(page.get_by_label("4 分 满意")).to_be_checked()
    page.get_by_label("评价意见（选填）").fill("讲解生动，建议多留交流时间")
    page.locator("#booking-feedback").get_by_role("button", name="提交评价").click()

    expect(page.locator("#booking-feedback")).to_have_attribute("data-rated", "true")
    expect(page.locator("main")).to_contain_text("感谢评价")
    expect(page.locator("#booking-feedback .rating-given")).to_contain_text("4 分 满意")
    expect(page.locator("#booking-feedback")).to_contain_text("讲解生动，建议多留交流时间")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll on a phone
    db.session.rollback()
    stored = db.session.scalar(sa.select(BookingFeedback))
    assert (stored.booking_id, stored.rating) == (booking_id, 4)

    page.goto(base + "/bookings")
    expect(page.locator("#awaiting-feedback")).to_have_count(0)

    page.context.clear_cookies()
    browser_login(page, base, "host1", "partyday")
    page.goto(base + "/host/")
    page.get_by_role("link", name="评价反馈").click()
    page.wait_for_url("**/host/feedback")
    item = page.locator(".feedback-item").first
    expect(item).to_contain_text("4 分 满意")
    expect(item).to_contain_text("讲解生动，建议多留交流时间")
    expect(item).to_contain_text(db.session.get(User, stored.author_id).organisation.name)
    expect(page.locator("[data-count]")).to_have_text("1")
