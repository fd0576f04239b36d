"""Browser: the date-first calendar on a phone (390×844), with and without JavaScript — open
/calendar, go to the next week (with htmx the block is swapped, the page does not reload), follow a
slot to its page; a host's calendar shows each slot's fill bar with its text."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from blueprints.accounts.models import User
from blueprints.catalog.models import Slot
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.demo.loader import load_demo
from blueprints.menu.calendar import week_of

from .conftest import browser_login

pytestmark = pytest.mark.browser
PHONE_WIDTH = 390


def _day_boxes(page) -> list[dict]:
    return [box for box in (li.bounding_box() for li in page.locator(".cal-day").all()) if box]


def test_open_the_calendar_go_to_next_week_and_follow_a_slot(live_server, page_js_and_nojs, request):
    page = page_js_and_nojs
    javascript = request.node.callspec.params["page_js_and_nojs"] == "js"
    load_demo(branches=3, history=False)
    next_week = week_of(clock.today()).next()

    page.goto(live_server.url + "/")
    page.get_by_role("link", name="按日期查看").click()
    page.wait_for_url("**/calendar")
    expect(page.locator("#calendar-title")).to_contain_text(week_of(clock.today()).label().split("（")[0])
    if javascript:
        page.evaluate("window.__sameDocument = true")

    page.get_by_role("link", name="下一周 ›").click()
    page.wait_for_url(f"**/calendar?week={next_week.value}")
    expect(page.locator("#calendar-title")).to_have_text(next_week.label())
    if javascript:
        assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of swapping the week"

    # On a phone the days are one column (a list), and nothing scrolls sideways.
    boxes = _day_boxes(page)
    assert len(boxes) >= 2 and len({round(box["x"]) for box in boxes}) == 1
    assert all(box["x"] + box["width"] <= PHONE_WIDTH + 0.5 for box in boxes)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH

    first = page.locator("#calendar [data-slot-id]").first
    slot_id, shown = first.get_attribute("data-slot-id"), first.get_attribute("data-remaining")
    first.locator("a").click()
    page.wait_for_url(f"**/slots/{slot_id}")
    assert page.locator("[data-remaining]").first.get_attribute("data-remaining") == shown


def test_the_calendar_is_a_grid_of_seven_days_on_a_wide_screen(live_server, browser):
    load_demo(branches=3, history=False)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(live_server.url + f"/calendar?week={week_of(clock.today()).next().value}")
    boxes = _day_boxes(page)
    assert len(boxes) == 7 and len({round(box["y"]) for box in boxes}) == 1  # one row, seven columns
    assert len({round(box["x"]) for box in boxes}) == 7
    context.close()


def test_host_calendar_shows_the_fill_bar_with_its_text(live_server, page_js_and_nojs):
    page = page_js_and_nojs
    load_demo(branches=3, history=False)
    host = db.session.scalar(sa.select(User).where(User.username == "host1"))
    slot = db.session.scalar(sa.select(Slot).where(Slot.station_id == host.stations[0].id,
                                                   Slot.starts_at > clock.now()).order_by(Slot.starts_at))
    week = week_of(clock.to_local(slot.starts_at).date())
    browser_login(page, live_server.url, "host1", "partyday")
    page.goto(live_server.url + "/host/")
    page.get_by_role("link", name="站点场次日历").click()
    page.wait_for_url("**/host/calendar")
    page.goto(live_server.url + f"/host/calendar?week={week.value}")
    item = page.locator(f'#calendar [data-slot-id="{slot.id}"]')
    fill = item.locator(".fill[role=img]")
    expect(fill).to_be_visible()
    assert re.fullmatch(r"已确认 \d+ / \d+ 人，\d+ 人待审核", fill.get_attribute("aria-label"))
    expect(item.locator(".fill-text")).to_contain_text(f"/ {slot.capacity} 人")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
    item.locator("a.cal-slot-link").click()
    page.wait_for_url(f"**/host/slots/{slot.id}")
