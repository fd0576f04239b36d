"""The printable booking confirmation (issue 15, item 3): ``GET /bookings/<id>/confirmation``.

Who sees it (the booking page's rule, ``services.may_see``), what it says (package, station with its
address and tap-to-call phone, Shanghai time, headcount, contact, booking number, status), the
check-in code only on the slot's day, the text to forward to the members (always Chinese), page and
htmx fragment, bounded SQL; in a phone-sized browser with and without JavaScript, and in print.
"""
from __future__ import annotations

import html
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from blueprints.booking.models import BookingStatus
from blueprints.core import clock

from . import factories as f
from .conftest import FROZEN_NOW, browser_login

ADDRESS = "上海市闵行区申长路1588号B1层"
# The slot: Monday 2026-11-30 14:00–16:00 in Shanghai (06:00 UTC), a week after FROZEN_NOW.
STARTS = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)


def _world(status=BookingStatus.CONFIRMED, starts_at=STARTS, **booking):
    station = f.create_station(name="虹桥党群服务站", address=ADDRESS, phone="021-64001234-801")
    other_station = f.create_station()
    package = f.create_package(stations=[station], title="红色经典诵读")
    slot = f.create_slot(package=package, station=station, starts_at=starts_at)
    org_a = f.create_organisation(name="虹桥第一党支部")
    org_b = f.create_organisation(name="虹桥第二党支部")
    booking.setdefault("contact_name", "王书记")
    booking.setdefault("contact_phone", "13912345678")
    return {
        "booking": f.create_booking(slot=slot, organisation=org_a, headcount=12, status=status, **booking),
        "sec_a": f.create_secretary(organisation=org_a),
        "sec_b": f.create_secretary(organisation=org_b),
        "host_x": f.create_host(stations=[station]),
        "host_y": f.create_host(stations=[other_station]),
        "admin": f.create_admin(),
    }


def _url(booking) -> str:
    return f"/bookings/{booking.id}/confirmation"


def _text(page: str) -> str:
    """What a reader sees: tags dropped, entities resolved, runs of white space made one."""
    page = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", page)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"(?s)<[^>]+>", "", page)))


def _forward_text(page: str) -> str:
    found = re.search(r'(?s)<textarea id="forward-text"[^>]*>(.*?)</textarea>', page)
    assert found, "no forward text"
    return html.unescape(found.group(1))


# -- who sees it ----------------------------------------------------------------------------------

@pytest.mark.parametrize("who, status", [
    ("sec_a", 200),   # the booking's own organisation
    ("sec_b", 404),   # another branch: not even told that it exists
    ("host_x", 200),  # a host of the booking's station
    ("host_y", 404),  # a host of another station
    ("admin", 200),   # district administrators see every booking
])
def test_role_and_ownership_decide_who_sees_the_confirmation(client, login, frozen_now, who, status):
    world = _world()
    login(world[who])
    response = client.get(_url(world["booking"]))
    assert response.status_code == status
    if status == 200:
        assert "预约确认单" in response.get_data(as_text=True)


def test_anonymous_visitor_is_sent_to_login(client, frozen_now):
    world = _world()
    response = client.get(_url(world["booking"]))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_unknown_booking_is_404_for_an_admin(client, login, frozen_now):
    world = _world()
    login(world["admin"])
    assert client.get(f"/bookings/{world['booking'].id + 1000}/confirmation").status_code == 404


def test_deactivated_secretary_of_the_booking_no_longer_sees_it(client, login, frozen_now):
    from blueprints.core.extensions import db

    world = _world()
    login(world["sec_a"])
    world["sec_a"].active = False
    db.session.commit()
    assert client.get(_url(world["booking"])).status_code in (302, 404)


# -- what it says --------------------------------------------------------------------------------

def test_secretary_page_shows_package_station_address_phone_time_people_contact_number_status(
        client, login, frozen_now):
    world = _world(note="需要投影仪")
    booking = world["booking"]
    login(world["sec_a"])
    page = client.get(_url(booking)).get_data(as_text=True)
    text = _text(page)
    assert "<html" in page and 'class="site-header"' in page
    assert "红色经典诵读" in text and "理论学习" in text
    assert "虹桥党群服务站" in text
    assert ADDRESS in text  # the full address, through templates/_address.html …
    assert '<span class="address-number">1588号B1层</span>' in page and 'class="map-link"' in page
    assert '<a class="phone" href="tel:02164001234,801">021-64001234-801</a>' in page  # … and _phone.html
    assert '<a class="phone" href="tel:13912345678">13912345678</a>' in page  # the contact, tap to call
    assert "11月30日周一 14:00–16:00" in text  # Shanghai time (06:00 UTC)
    assert 'datetime="2026-11-30T14:00:00+08:00"' in page
    assert "<dt>参加人数</dt><dd>12</dd>" in page
    assert "王书记" in text and "虹桥第一党支部" in text and "需要投影仪" in text
    assert f'data-booking-number>{booking.id}<' in page and "预约编号" in text
    assert '<span class="status status-confirmed">已确认</span>' in page  # the status labels of the booking page
    assert f'href="/bookings/{booking.id}"' in page  # back to the booking


def test_forward_text_is_chinese_plain_text_with_time_place_gathering_and_contact(client, login, frozen_now):
    world = _world()
    login(world["sec_a"])
    page = client.get(_url(world["booking"])).get_data(as_text=True)
    assert re.search(r'<textarea id="forward-text"[^>]*\breadonly\b', page)
    assert re.search(r'<label[^>]*for="forward-text"', page)  # labelled
    lines = _forward_text(page).splitlines()
    assert lines == [
        "【主题党日】红色经典诵读",
        "时间：11月30日周一 14:00–16:00",
        f"地点：虹桥党群服务站（{ADDRESS}）",
        "集合：请于 13:50 前到达服务站签到（开始前 10 分钟）。",
        "参加：虹桥第一党支部，共 12 人",
        "联系人：王书记 13912345678",
        "站点电话：021-64001234-801",
        f"预约编号：{world['booking'].id}",
    ]
    # The copy button copies the same text; it is an addition (app.js), the field works without it.
    assert 'data-copy-field="forward-text"' in page


def test_forward_text_stays_chinese_when_the_page_is_in_english(client, login, frozen_now):
    world = _world()
    login(world["sec_a"])
    client.post("/lang", data={"lang": "en", "next": "/"})
    page = client.get(_url(world["booking"])).get_data(as_text=True)
    assert "Booking number" in page and "预约编号" not in _text(page).split("Booking number")[0]
    assert _forward_text(page).startswith("【主题党日】红色经典诵读\n时间：11月30日周一 14:00–16:00")


def test_text_typed_by_users_is_escaped_in_the_page_and_the_forward_text(client, login, frozen_now):
    world = _world(contact_name="<b>李</b>", note='"><script>x</script>')
    login(world["sec_a"])
    page = client.get(_url(world["booking"])).get_data(as_text=True)
    assert "<script>x" not in page and "<b>李</b>" not in page
    assert "联系人：<b>李</b> 13912345678" in _forward_text(page)


def test_booking_page_links_to_its_confirmation(client, login, frozen_now):
    world = _world()
    login(world["sec_a"])
    page = client.get(f"/bookings/{world['booking'].id}").get_data(as_text=True)
    assert re.search(rf'<a [^>]*href="/bookings/{world["booking"].id}/confirmation"[^>]*>打印确认单</a>', page)


# -- the check-in code ---------------------------------------------------------------------------

def test_qr_code_only_on_the_slots_day(client, login, frozen_now):
    world = _world()
    login(world["sec_a"])
    before = client.get(_url(world["booking"])).get_data(as_text=True)  # a week before
    assert "data-checkin-qr" not in before and "<svg" not in before
    assert "签到码将于场次当天（11月30日）显示在本页" in _text(before)

    frozen_now.set(datetime(2026, 11, 29, 15, 59, tzinfo=timezone.utc))  # 23:59 the evening before
    assert "<svg" not in client.get(_url(world["booking"])).get_data(as_text=True)

    frozen_now.set(datetime(2026, 11, 29, 16, 0, tzinfo=timezone.utc))  # midnight in Shanghai: check-in opens
    on_the_day = client.get(_url(world["booking"])).get_data(as_text=True)
    assert re.search(r"(?s)<figure class=\"confirmation-qr\" data-checkin-qr>\s*<svg", on_the_day)
    assert "data-checkin-later" not in on_the_day
    assert "到场时请向站点管理员出示此签到码。" in _text(on_the_day)

    frozen_now.set(datetime(2026, 11, 30, 16, 0, tzinfo=timezone.utc))  # the next day: gone again
    assert "<svg" not in client.get(_url(world["booking"])).get_data(as_text=True)


@pytest.mark.parametrize("status, says", [
    (BookingStatus.PENDING, "预约确认后，签到码将于场次当天显示在本页"),
    (BookingStatus.WAITLISTED, "预约确认后，签到码将于场次当天显示在本页"),
    (BookingStatus.CANCELLED, "该预约没有签到码"),
    (BookingStatus.DECLINED, "该预约没有签到码"),
])
def test_no_qr_code_for_a_booking_that_is_not_confirmed_even_on_the_day(client, login, frozen_now, status, says):
    world = _world(status=status)
    frozen_now.set(STARTS - timedelta(hours=1))
    login(world["sec_a"])
    page = client.get(_url(world["booking"])).get_data(as_text=True)
    assert "<svg" not in page
    assert says in _text(page)


def test_host_sees_the_same_qr_code_on_the_day(client, login, frozen_now):
    from blueprints.host import checkin

    world = _world()
    frozen_now.set(STARTS - timedelta(hours=1))
    login(world["host_x"])
    page = client.get(_url(world["booking"])).get_data(as_text=True)
    assert str(checkin.checkin_qr_svg(world["booking"])) in page


# -- page, fragment, SQL -------------------------------------------------------------------------

def test_htmx_request_gets_the_block_and_a_boosted_one_the_page(client, login, frozen_now, htmx_headers):
    world = _world()
    login(world["sec_a"])
    fragment = client.get(_url(world["booking"]), headers=htmx_headers).get_data(as_text=True)
    assert "<html" not in fragment and 'class="site-header"' not in fragment
    assert fragment.lstrip().startswith("<article") and 'id="booking-confirmation"' in fragment
    assert "【主题党日】" in _forward_text(fragment)
    boosted = client.get(_url(world["booking"]), headers={**htmx_headers, "HX-Boosted": "true"})
    assert "<html" in boosted.get_data(as_text=True)


def test_bounded_sql_whatever_the_slot_holds(client, login, frozen_now, count_queries):
    """One statement loads the booking with its slot, package, station and organisation."""
    world = _world()
    login(world["sec_a"])
    url = _url(world["booking"])
    client.get(url)  # warm: the user kept by the app, the render cache's versions

    def statements() -> list[str]:
        with count_queries() as counter:
            assert client.get(url).status_code == 200
        return counter.statements

    few = statements()
    for _ in range(5):  # more groups on the same slot, more organisations
        f.create_booking(slot=world["booking"].slot)
    assert len(statements()) == len(few)
    assert len(few) <= 2, few
    assert any("JOIN stations" in s and "JOIN organisations" in s and "JOIN packages" in s for s in few)


def test_the_page_changes_nothing(client, login, frozen_now):
    world = _world()
    login(world["sec_a"])
    booking = world["booking"]
    before = (booking.status, booking.revision, len(booking.events))
    client.get(_url(booking))
    assert (booking.status, booking.revision, len(booking.events)) == before


# -- in a browser --------------------------------------------------------------------------------

SHOTS = os.environ.get("CONFIRMATION_SHOTS")  # a directory: screenshots to look at


def _browser_world():
    """A confirmed booking of sec_a in two days (no check-in code yet), real clock."""
    return _world(starts_at=clock.local_datetime(clock.today() + timedelta(days=2), 14))


@pytest.mark.browser
def test_phone_opens_the_confirmation_from_the_booking_and_selects_the_forward_text(
        app, live_server, page_js_and_nojs, request):
    page = page_js_and_nojs
    js = request.node.callspec.params["page_js_and_nojs"] == "js"
    world = _browser_world()
    booking_id = world["booking"].id
    browser_login(page, live_server.url, world["sec_a"].username, f.PASSWORD)
    page.goto(f"{live_server.url}/bookings/{booking_id}")
    page.get_by_role("link", name="打印确认单").click()
    page.wait_for_url(f"**/bookings/{booking_id}/confirmation")
    field = page.get_by_label("含时间和地址：选中复制后粘贴到党员群里。")
    field.wait_for()
    assert field.get_attribute("readonly") is not None
    value = field.input_value()
    assert value.startswith("【主题党日】红色经典诵读\n时间：") and ADDRESS in value
    assert page.locator("[data-checkin-qr]").count() == 0  # two days ahead: when it appears instead
    assert "签到码将于场次当天" in page.locator("[data-checkin-later]").text_content()

    # Selectable by hand: focus the field and select all, as a phone's long-press menu does.
    field.focus()
    page.keyboard.press("Control+A")
    selected = page.evaluate("() => { const t = document.getElementById('forward-text');"
                             " return [t.selectionStart, t.selectionEnd, t.value.length]; }")
    assert selected[0] == 0 and selected[1] == selected[2] == len(value)

    # Nothing wider than the phone.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    # The whole text shows at once (the field grows with its wrapped lines).
    assert page.evaluate("() => { const t = document.getElementById('forward-text');"
                         " return t.scrollHeight <= t.clientHeight + 1; }")

    assert page.evaluate("() => matchMedia('(scripting: enabled)').matches") is js
    copy = page.get_by_role("button", name="复制通知")
    if js:  # the copy button: copied, or (no clipboard) the field selected and a hint
        copy.click()
        status = page.locator("#forward-status")
        status.wait_for()
        page.wait_for_function("() => document.getElementById('forward-status').textContent.trim() !== ''")
        assert status.text_content().strip() in ("已复制", "请长按文字手动复制")
    else:  # without JavaScript a button could do nothing: it is not shown
        assert not copy.is_visible()

    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        name = "js" if js else "nojs"
        page.screenshot(path=str(Path(SHOTS) / f"confirmation_390_{name}.png"), full_page=True)


@pytest.mark.browser
def test_print_hides_the_header_and_fits_one_a4_page(app, live_server, browser):
    world = _world(starts_at=clock.local_datetime(clock.today(), 23, 0))  # today: the check-in code shows
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        browser_login(page, live_server.url, world["sec_a"].username, f.PASSWORD)
        page.goto(f"{live_server.url}/bookings/{world['booking'].id}/confirmation")
        assert page.locator(".site-header").is_visible()
        assert page.locator("[data-checkin-qr] svg").is_visible()
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(SHOTS) / "confirmation_1280.png"), full_page=True)
        page.emulate_media(media="print")
        assert not page.locator(".site-header").is_visible()
        assert not page.locator(".site-footer").is_visible()
        assert not page.locator("nav.crumbs").is_visible()
        assert not page.get_by_role("button", name="复制通知").is_visible()
        assert page.locator("#forward-text").is_visible()
        assert page.locator("[data-checkin-qr] svg").is_visible()
        if SHOTS:
            page.screenshot(path=str(Path(SHOTS) / "confirmation_print.png"), full_page=True)
            page.pdf(path=str(Path(SHOTS) / "confirmation.pdf"), format="A4")
        pdf = page.pdf(format="A4")
        assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 1  # one A4 sheet
    finally:
        context.close()
