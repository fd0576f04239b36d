"""Request-level tests of every booking route: full page and htmx fragment, role and ownership,
bad input (a Chinese message, never a 500, nothing changed), CSRF, places left, bounded queries.

Routes: GET /packages/<id>, GET /slots/<id>, GET /slots/<id>/places, POST /slots/<id>/book,
GET /bookings, GET /bookings/<id>, POST /bookings/<id>/headcount, POST /bookings/<id>/cancel,
GET /notifications, POST /notifications/read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app import create_app
from blueprints.accounts.models import User
from blueprints.booking.models import Booking, BookingEvent, BookingStatus, Notification
from blueprints.catalog.models import Package, Slot, SlotStatus, Station
from blueprints.core import clock
from blueprints.core.extensions import db

from . import factories as f
from .conftest import FROZEN_NOW, SessionIsolatingClient, app_config

GOOD_FORM = {"headcount": "8", "contact_name": "王书记", "contact_phone": "13912345678", "note": "请准备投影"}


# -- the scene ------------------------------------------------------------------------------

_HASHES: dict[str, str] = {}


@pytest.fixture(autouse=True)
def hash_the_test_password_once(monkeypatch):
    """scrypt is slow on purpose; these tests make many users with the same password."""
    original = User.set_password

    def set_password(user, password):
        if password not in _HASHES:
            original(user, password)
            _HASHES[password] = user.password_hash
        user.password_hash = _HASHES[password]

    monkeypatch.setattr(User, "set_password", set_password)


@dataclass
class Scene:
    station: Station
    other_station: Station
    package: Package
    slot: Slot
    secretary: User
    other_secretary: User
    host: User
    other_host: User
    admin: User


@pytest.fixture
def scene() -> Scene:
    station = f.create_station(name="七宝老街党群服务站", phone="021-64001234")
    other_station = f.create_station(name="虹桥火车站党群服务站")
    package = f.create_package(stations=[station], title="进博·理论学习包", min_group_size=1, max_group_size=20)
    slot = f.create_slot(package=package, station=station, capacity=30)
    return Scene(
        station=station,
        other_station=other_station,
        package=package,
        slot=slot,
        secretary=f.create_secretary(organisation=f.create_organisation(name="新虹街道机关第一党支部")),
        other_secretary=f.create_secretary(organisation=f.create_organisation(name="七宝镇第二党支部")),
        host=f.create_host(stations=[station]),
        other_host=f.create_host(stations=[other_station]),
        admin=f.create_admin(),
    )


@pytest.fixture
def client_as(app):
    """``client_as(user)``: a fresh test client logged in as ``user`` (``None``: anonymous)."""

    def make(user: User | None):
        client = app.test_client()
        if user is not None:
            response = client.post("/login", data={"username": user.username, "password": f.PASSWORD})
            assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return make


# -- helpers --------------------------------------------------------------------------------

def snapshot(booking_id: int) -> tuple:
    """What must not change when a request is refused: revision, status, headcount, events."""
    db.session.expire_all()
    booking = db.session.get(Booking, booking_id)
    events = db.session.scalar(
        sa.select(sa.func.count(BookingEvent.id)).where(BookingEvent.booking_id == booking_id)
    )
    return booking.revision, booking.status, booking.headcount, events


def bookings_of_slot(slot_id: int) -> int:
    return db.session.scalar(sa.select(sa.func.count(Booking.id)).where(Booking.slot_id == slot_id))


def remaining(html: str) -> int:
    found = re.findall(r'data-remaining="(-?\d+)"', html)
    assert len(found) == 1, found
    return int(found[0])


def assert_fragment(response, marker: str) -> str:
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert marker in html, html[:500]
    return html


def assert_full_page(response, marker: str) -> str:
    html = response.get_data(as_text=True)
    assert "<html" in html
    assert marker in html
    return html


def assert_htmx_change(response, marker: str) -> str:
    """A successful htmx POST: the fragment, the booking-changed trigger and the OOB badge."""
    assert response.status_code == 200, response.get_data(as_text=True)
    html = assert_fragment(response, marker)
    assert "booking-changed" in response.headers.get("HX-Trigger", "")
    assert re.search(r'<span id="unread-badge"[^>]*hx-swap-oob="true"', html), html
    return html


def assert_login_redirect(response) -> None:
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def book_as_secretary(client, slot, **fields):
    return client.post(f"/slots/{slot.id}/book", data={**GOOD_FORM, **fields})


# == GET /packages/<id> =====================================================================

def test_anyone_sees_the_package_page_with_its_upcoming_slots(scene, client_as):
    response = client_as(None).get(f"/packages/{scene.package.id}")
    assert response.status_code == 200
    html = assert_full_page(response, "进博·理论学习包")
    assert f'href="/slots/{scene.slot.id}"' in html and "七宝老街党群服务站" in html


def test_package_page_htmx_fragment_is_the_slot_list(scene, client_as, htmx_headers):
    response = client_as(scene.secretary).get(f"/packages/{scene.package.id}", headers=htmx_headers)
    assert response.status_code == 200
    html = assert_fragment(response, 'id="package-slots"')
    assert f'href="/slots/{scene.slot.id}"' in html
    assert "HX-Request" in response.headers["Vary"]


def test_package_page_slots_are_paginated(app, scene, client_as):
    for day in range(app.config["PAGE_SIZE"] + 2):
        f.create_slot(package=scene.package, station=scene.station, starts_at=clock.now() + timedelta(days=8 + day))
    client = client_as(None)
    first = client.get(f"/packages/{scene.package.id}").get_data(as_text=True)
    second = client.get(f"/packages/{scene.package.id}?page=2").get_data(as_text=True)
    assert first.count('href="/slots/') == app.config["PAGE_SIZE"]
    assert second.count('href="/slots/') == 3 and 'rel="prev"' in second


@pytest.mark.parametrize("which", ["unknown", "inactive"])
def test_unknown_or_inactive_package_is_404_with_a_chinese_page(scene, client_as, which):
    package_id = 999_999 if which == "unknown" else f.create_package(active=False).id
    response = client_as(None).get(f"/packages/{package_id}")
    assert response.status_code == 404
    assert "未找到" in response.get_data(as_text=True)


# == GET /slots/<id> ========================================================================

def test_anonymous_sees_the_slot_page_and_is_asked_to_log_in_to_book(scene, client_as):
    response = client_as(None).get(f"/slots/{scene.slot.id}")
    assert response.status_code == 200
    html = assert_full_page(response, 'id="booking-panel"')
    assert remaining(html) == 30
    assert f"/login?next=/slots/{scene.slot.id}" in html.replace("%2F", "/")
    assert 'name="headcount"' not in html


def test_secretary_sees_the_booking_form_for_their_own_organisation(scene, client_as):
    html = client_as(scene.secretary).get(f"/slots/{scene.slot.id}").get_data(as_text=True)
    assert 'name="headcount"' in html and 'name="contact_phone"' in html
    assert "新虹街道机关第一党支部" in html and "七宝镇第二党支部" not in html
    for name in ("headcount", "contact_name", "contact_phone", "note"):
        assert f'<label for="{name}"' in html  # every field has a label


def test_slot_page_htmx_fragment_is_the_booking_panel(scene, client_as, htmx_headers):
    response = client_as(scene.secretary).get(f"/slots/{scene.slot.id}", headers=htmx_headers)
    assert response.status_code == 200
    html = assert_fragment(response, 'id="booking-panel"')
    assert html.lstrip().startswith('<section class="panel booking-panel" id="booking-panel"')


def test_boosted_slot_request_gets_the_full_page(scene, client_as):
    response = client_as(scene.secretary).get(
        f"/slots/{scene.slot.id}", headers={"HX-Request": "true", "HX-Boosted": "true"}
    )
    assert_full_page(response, 'id="booking-panel"')


@pytest.mark.parametrize("role", ["host", "admin"])
def test_host_and_admin_see_the_slot_page_without_a_booking_form(scene, client_as, role):
    html = client_as(getattr(scene, role)).get(f"/slots/{scene.slot.id}").get_data(as_text=True)
    assert "场次由支部书记预约" in html and 'name="headcount"' not in html


def test_unknown_slot_is_404(client_as, scene):
    response = client_as(scene.secretary).get("/slots/999999")
    assert response.status_code == 404 and "未找到" in response.get_data(as_text=True)


def test_data_remaining_is_capacity_minus_held_headcount(scene, client_as):
    f.create_booking(slot=scene.slot, headcount=7)
    f.create_booking(slot=scene.slot, headcount=3, status=BookingStatus.PENDING)
    f.create_booking(slot=scene.slot, headcount=5, status=BookingStatus.CANCELLED)
    f.create_booking(slot=scene.slot, headcount=4, status=BookingStatus.WAITLISTED)
    f.create_booking(slot=scene.slot, headcount=2, status=BookingStatus.DECLINED)
    html = client_as(None).get(f"/slots/{scene.slot.id}").get_data(as_text=True)
    assert remaining(html) == 30 - 7 - 3


def test_data_remaining_drops_after_a_secretarys_booking(scene, client_as):
    client = client_as(scene.secretary)
    assert remaining(client.get(f"/slots/{scene.slot.id}").get_data(as_text=True)) == 30
    assert book_as_secretary(client, scene.slot, headcount="8").status_code in (302, 303)
    assert remaining(client.get(f"/slots/{scene.slot.id}").get_data(as_text=True)) == 22
    assert remaining(client.get(f"/slots/{scene.slot.id}/places", headers={"HX-Request": "true"})
                     .get_data(as_text=True)) == 22


@pytest.mark.parametrize("status", [SlotStatus.CLOSED, SlotStatus.CANCELLED])
def test_secretary_sees_why_a_closed_or_cancelled_slot_cannot_be_booked(scene, client_as, status):
    scene.slot.status = status
    html = client_as(scene.secretary).get(f"/slots/{scene.slot.id}").get_data(as_text=True)
    assert ("该场次已停止预约" if status is SlotStatus.CLOSED else "该场次已取消") in html
    assert 'name="headcount"' not in html


def _query_count(client, count_queries, url: str) -> int:
    client.get("/")  # the unread badge is cached from the user's first page on
    with count_queries() as counter:
        response = client.get(url)
        assert response.status_code == 200
    return counter.count


def test_slot_page_query_count_does_not_grow_with_bookings(scene, client_as, count_queries):
    slot = f.create_slot(package=scene.package, station=scene.station, capacity=500)
    client = client_as(scene.secretary)
    for _ in range(2):
        f.create_booking(slot=slot, headcount=2)
    few = _query_count(client, count_queries, f"/slots/{slot.id}")
    for _ in range(28):
        f.create_booking(slot=slot, headcount=2)
    many = _query_count(client, count_queries, f"/slots/{slot.id}")
    assert many == few, (few, many)
    assert few <= 12


# == GET /slots/<id>/places =================================================================

def test_places_fragment_for_htmx_is_only_the_live_element(scene, client_as, htmx_headers):
    f.create_booking(slot=scene.slot, headcount=4)
    response = client_as(None).get(f"/slots/{scene.slot.id}/places", headers=htmx_headers)
    assert response.status_code == 200
    html = assert_fragment(response, f'id="places-{scene.slot.id}"')
    assert html.strip().startswith("<span") and remaining(html) == 26
    assert "booking-changed from:body" in html  # refreshes itself after any booking change


def test_places_without_htmx_redirects_to_the_slot_page(scene, client_as):
    response = client_as(None).get(f"/slots/{scene.slot.id}/places")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/slots/{scene.slot.id}")


def test_places_of_an_unknown_slot_is_404(client_as, htmx_headers):
    assert client_as(None).get("/slots/999999/places", headers=htmx_headers).status_code == 404


# == POST /slots/<id>/book ==================================================================

def test_secretary_books_without_javascript_and_is_redirected_with_a_flash(scene, client_as):
    client = client_as(scene.secretary)
    response = book_as_secretary(client, scene.slot)
    assert response.status_code in (302, 303)
    booking = db.session.scalar(sa.select(Booking).where(Booking.slot_id == scene.slot.id))
    assert response.headers["Location"].endswith(f"/bookings/{booking.id}")
    assert booking.organisation_id == scene.secretary.organisation_id
    assert (booking.status, booking.headcount, booking.contact_phone, booking.note) == (
        BookingStatus.CONFIRMED, 8, "13912345678", "请准备投影")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "预约成功：您的预约已确认。" in page


def test_secretary_books_with_htmx_and_gets_the_panel_trigger_and_badge(scene, client_as, htmx_headers):
    client = client_as(scene.secretary)
    response = client.post(f"/slots/{scene.slot.id}/book", data=GOOD_FORM, headers=htmx_headers)
    html = assert_htmx_change(response, 'id="booking-panel"')
    assert "预约成功" in html and "已确认" in html
    # the confirmation notification shows in the out-of-band badge
    assert re.search(r'<span id="unread-badge"[^>]*>1</span>', html)
    assert bookings_of_slot(scene.slot.id) == 1


def test_secretary_booking_at_an_approval_station_is_pending(scene, client_as):
    scene.station.requires_approval = True
    client = client_as(scene.secretary)
    response = book_as_secretary(client, scene.slot)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "站点将审核您的预约" in page
    assert db.session.scalar(sa.select(Booking.status)) is BookingStatus.PENDING


def test_secretary_cannot_book_for_another_organisation_by_adding_a_field(scene, client_as):
    client = client_as(scene.secretary)
    book_as_secretary(client, scene.slot, organisation_id=str(scene.other_secretary.organisation_id))
    booking = db.session.scalar(sa.select(Booking))
    assert booking.organisation_id == scene.secretary.organisation_id


def test_anonymous_cannot_book_and_is_sent_to_log_in(scene, client_as):
    assert_login_redirect(book_as_secretary(client_as(None), scene.slot))
    assert bookings_of_slot(scene.slot.id) == 0


@pytest.mark.parametrize("role", ["host", "admin"])
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_host_and_admin_cannot_book(scene, client_as, role, htmx):
    headers = {"HX-Request": "true"} if htmx else {}
    response = client_as(getattr(scene, role)).post(f"/slots/{scene.slot.id}/book", data=GOOD_FORM, headers=headers)
    assert response.status_code == 403
    assert "无权访问" in response.get_data(as_text=True)
    assert bookings_of_slot(scene.slot.id) == 0


def test_secretary_booking_an_unknown_slot_gets_404(scene, client_as):
    response = client_as(scene.secretary).post("/slots/999999/book", data=GOOD_FORM)
    assert response.status_code == 404
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))) == 0


BAD_BOOKINGS = [
    ({"headcount": ""}, "请填写整数人数"),
    ({"headcount": "abc"}, "请填写整数人数"),
    ({"headcount": "-3"}, "请填写整数人数"),
    ({"headcount": "0"}, "请填写整数人数"),
    ({"headcount": "2.5"}, "请填写整数人数"),
    ({"headcount": "25"}, "该服务包每批接待1至20人"),
    ({"contact_name": ""}, "请填写联系人姓名"),
    ({"contact_name": "   "}, "请填写联系人姓名"),
    ({"contact_phone": ""}, "请填写联系电话"),
    ({"contact_phone": "12345"}, "请填写11位手机号码或带区号的固定电话"),
    ({"contact_phone": "1391234567x"}, "请填写11位手机号码或带区号的固定电话"),
    ({"note": "长" * 501}, "字段长度不能超过 500 个字符"),
    ({"contact_name": "王" * 61}, "字段长度不能超过 60 个字符"),
]


@pytest.mark.parametrize("fields,message", BAD_BOOKINGS, ids=[
    "missing-headcount", "non-numeric-headcount", "negative-headcount", "zero-headcount",
    "fractional-headcount", "headcount-over-group-size", "missing-name", "blank-name", "missing-phone",
    "short-phone", "bad-phone", "overlong-note", "overlong-name",
])
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_secretary_bad_booking_input_gets_a_chinese_message_and_books_nothing(
        scene, client_as, fields, message, htmx):
    headers = {"HX-Request": "true"} if htmx else {}
    response = client_as(scene.secretary).post(
        f"/slots/{scene.slot.id}/book", data={**GOOD_FORM, **fields}, headers=headers
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html
    assert html.count(message) == 1 and "不是有效的整数" not in html  # one clear message, not two
    assert 'role="alert"' in html
    assert ("<html" in html) is not htmx  # no JavaScript: the page re-rendered with the form
    assert 'name="headcount"' in html  # the form is there to correct
    assert "HX-Trigger" not in response.headers
    assert bookings_of_slot(scene.slot.id) == 0


def test_secretary_headcount_over_places_left_is_refused_with_a_waitlist_offer(scene, client_as, htmx_headers):
    f.create_booking(slot=scene.slot, headcount=20)
    response = client_as(scene.secretary).post(
        f"/slots/{scene.slot.id}/book", data={**GOOD_FORM, "headcount": "15"}, headers=htmx_headers
    )
    assert response.status_code == 422
    html = assert_fragment(response, "仅剩10个名额")
    assert 'name="waitlist" value="1"' in html
    assert bookings_of_slot(scene.slot.id) == 1


def test_secretary_joins_the_waitlist_of_a_full_slot(scene, client_as):
    f.create_booking(slot=scene.slot, headcount=30)
    client = client_as(scene.secretary)
    page = client.get(f"/slots/{scene.slot.id}").get_data(as_text=True)
    assert remaining(page) == 0 and 'name="waitlist" value="1"' in page
    response = book_as_secretary(client, scene.slot, waitlist="1")
    assert response.status_code in (302, 303)
    booking = db.session.scalar(sa.select(Booking).where(Booking.organisation_id == scene.secretary.organisation_id))
    assert booking.status is BookingStatus.WAITLISTED
    assert "您已进入候补名单" in client.get(response.headers["Location"]).get_data(as_text=True)


@pytest.mark.parametrize("status,message", [(SlotStatus.CLOSED, "该场次已停止预约"),
                                            (SlotStatus.CANCELLED, "该场次已取消")])
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_secretary_cannot_book_a_closed_or_cancelled_slot(scene, client_as, status, message, htmx):
    scene.slot.status = status
    headers = {"HX-Request": "true"} if htmx else {}
    response = client_as(scene.secretary).post(f"/slots/{scene.slot.id}/book", data=GOOD_FORM, headers=headers)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert bookings_of_slot(scene.slot.id) == 0


def test_secretary_cannot_book_after_the_cutoff(frozen_now, client_as):
    station = f.create_station(booking_cutoff_hours=24, phone="021-64001234")
    slot = f.create_slot(station=station, package=f.create_package(stations=[station]),
                         starts_at=FROZEN_NOW + timedelta(hours=23))
    secretary = f.create_secretary()
    response = client_as(secretary).post(f"/slots/{slot.id}/book", data=GOOD_FORM)
    assert response.status_code == 422
    assert "开始前24小时已截止预约，请致电站点：021-64001234" in response.get_data(as_text=True)
    assert bookings_of_slot(slot.id) == 0
    # one hour earlier the same request books
    frozen_now.set(FROZEN_NOW - timedelta(hours=1, minutes=1))
    assert client_as(secretary).post(f"/slots/{slot.id}/book", data=GOOD_FORM).status_code in (302, 303)


def test_secretary_booking_twice_is_sent_to_the_existing_booking(scene, client_as, htmx_headers):
    client = client_as(scene.secretary)
    first = book_as_secretary(client, scene.slot)
    again = book_as_secretary(client, scene.slot)
    assert again.status_code in (302, 303) and again.headers["Location"] == first.headers["Location"]
    assert "本支部已预约过该场次" in client.get(again.headers["Location"]).get_data(as_text=True)
    by_htmx = client.post(f"/slots/{scene.slot.id}/book", data=GOOD_FORM, headers=htmx_headers)
    assert by_htmx.status_code in (200, 422)
    assert "<html" not in by_htmx.get_data(as_text=True)
    assert bookings_of_slot(scene.slot.id) == 1


# == GET /bookings ==========================================================================

def test_anonymous_is_sent_to_log_in_for_my_bookings(client_as):
    assert_login_redirect(client_as(None).get("/bookings"))


@pytest.mark.parametrize("role", ["host", "admin"])
def test_host_and_admin_have_no_my_bookings_page(scene, client_as, role):
    assert client_as(getattr(scene, role)).get("/bookings").status_code == 403


def test_secretary_sees_only_their_own_organisations_bookings(scene, client_as):
    own = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, headcount=6)
    theirs = f.create_booking(slot=f.create_slot(package=f.create_package(title="别人的包")),
                              organisation=scene.other_secretary.organisation)
    response = client_as(scene.secretary).get("/bookings")
    assert response.status_code == 200
    html = assert_full_page(response, f'href="/bookings/{own.id}"')
    assert f'href="/bookings/{theirs.id}"' not in html and "别人的包" not in html


def test_my_bookings_htmx_fragment_is_the_history_list(scene, client_as, htmx_headers):
    past_slot = f.create_slot(package=scene.package, station=scene.station,
                              starts_at=clock.now() - timedelta(days=3))
    past = f.create_booking(slot=past_slot, organisation=scene.secretary.organisation)
    response = client_as(scene.secretary).get("/bookings", headers=htmx_headers)
    assert response.status_code == 200
    html = assert_fragment(response, 'id="past-bookings"')
    assert f'href="/bookings/{past.id}"' in html


def test_my_bookings_history_is_paginated(app, scene, client_as):
    per_page = app.config["PAGE_SIZE"]
    for day in range(per_page + 3):
        slot = f.create_slot(package=scene.package, station=scene.station,
                             starts_at=clock.now() - timedelta(days=day + 1))
        f.create_booking(slot=slot, organisation=scene.secretary.organisation)
    client = client_as(scene.secretary)
    first = client.get("/bookings").get_data(as_text=True)
    second = client.get("/bookings?page=2").get_data(as_text=True)
    assert first.count('href="/bookings/') == per_page and 'rel="next"' in first
    assert second.count('href="/bookings/') == 3 and 'rel="prev"' in second


def test_my_upcoming_bookings_are_paginated_too(app, scene, client_as):
    per_page = app.config["PAGE_SIZE"]
    ids = []
    for day in range(per_page + 2):
        slot = f.create_slot(package=scene.package, station=scene.station,
                             starts_at=clock.now() + timedelta(days=day + 1))
        ids.append(f.create_booking(slot=slot, organisation=scene.secretary.organisation).id)
    client = client_as(scene.secretary)
    first = client.get("/bookings").get_data(as_text=True)
    assert f'href="/bookings/{ids[0]}"' in first and f'href="/bookings/{ids[-1]}"' not in first
    link = re.search(r'<a rel="next" href="([^"]*upcoming_page=2[^"]*)"', first)
    assert link, "the upcoming list needs a next-page link"
    second = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert f'href="/bookings/{ids[-1]}"' in second and f'href="/bookings/{ids[0]}"' not in second


def test_my_bookings_query_count_does_not_grow_with_bookings(scene, client_as, count_queries):
    client = client_as(scene.secretary)

    def add(n):
        for _ in range(n):
            package = f.create_package(stations=[scene.station])
            upcoming = f.create_slot(package=package, station=scene.station)
            f.create_booking(slot=upcoming, organisation=scene.secretary.organisation)
            past = f.create_slot(package=package, station=scene.station, starts_at=clock.now() - timedelta(days=2))
            f.create_booking(slot=past, organisation=scene.secretary.organisation)

    add(1)  # 2 bookings
    few = _query_count(client, count_queries, "/bookings")
    add(14)  # 30 bookings
    many = _query_count(client, count_queries, "/bookings")
    assert many == few, (few, many)
    assert few <= 10


# == GET /bookings/<id> =====================================================================

@pytest.fixture
def booking(scene):
    """A confirmed booking of 10 people by the secretary's organisation, made through the rules."""
    from blueprints.booking import services

    made = services.book(scene.secretary, scene.slot.id,
                         services.BookingRequest(10, "王书记", "13912345678", "第一次"))
    db.session.expire_all()
    return made


def test_secretary_sees_their_own_booking_page(scene, client_as, booking):
    response = client_as(scene.secretary).get(f"/bookings/{booking.id}")
    assert response.status_code == 200
    html = assert_full_page(response, 'id="booking-detail"')
    assert "新虹街道机关第一党支部" in html and "13912345678" in html
    assert f'action="/bookings/{booking.id}/headcount"' in html and f'action="/bookings/{booking.id}/cancel"' in html


def test_secretary_booking_page_htmx_fragment(scene, client_as, booking, htmx_headers):
    response = client_as(scene.secretary).get(f"/bookings/{booking.id}", headers=htmx_headers)
    assert response.status_code == 200
    html = assert_fragment(response, 'id="booking-detail"')
    assert html.lstrip().startswith('<div id="booking-detail">')


def test_anonymous_is_sent_to_log_in_for_a_booking(client_as, booking):
    assert_login_redirect(client_as(None).get(f"/bookings/{booking.id}"))


def test_secretary_cannot_see_another_branchs_booking(scene, client_as, booking, htmx_headers):
    client = client_as(scene.other_secretary)
    for headers in ({}, htmx_headers):
        response = client.get(f"/bookings/{booking.id}", headers=headers)
        assert response.status_code == 404
        assert "13912345678" not in response.get_data(as_text=True)


def test_host_sees_bookings_of_their_own_station_without_change_form(scene, client_as, booking):
    html = client_as(scene.host).get(f"/bookings/{booking.id}").get_data(as_text=True)
    assert "新虹街道机关第一党支部" in html
    assert f'action="/bookings/{booking.id}/headcount"' not in html  # only the branch changes headcount
    assert f'action="/bookings/{booking.id}/cancel"' in html


def test_host_cannot_see_bookings_of_another_station(scene, client_as, booking):
    assert client_as(scene.other_host).get(f"/bookings/{booking.id}").status_code == 404


def test_admin_sees_any_booking(scene, client_as, booking):
    assert client_as(scene.admin).get(f"/bookings/{booking.id}").status_code == 200


def test_unknown_booking_is_404(scene, client_as):
    assert client_as(scene.secretary).get("/bookings/999999").status_code == 404


def test_booking_page_query_count_does_not_grow_with_its_history(scene, client_as, booking, count_queries):
    from blueprints.booking import services

    client = client_as(scene.secretary)
    few = _query_count(client, count_queries, f"/bookings/{booking.id}")
    for headcount in (11, 12, 13, 14, 15, 16):
        services.change_headcount(scene.secretary, booking.id, headcount)
    many = _query_count(client, count_queries, f"/bookings/{booking.id}")
    assert many == few, (few, many)


# == POST /bookings/<id>/headcount ==========================================================

def test_secretary_changes_their_headcount_without_javascript(scene, client_as, booking):
    before = snapshot(booking.id)
    client = client_as(scene.secretary)
    response = client.post(f"/bookings/{booking.id}/headcount", data={"headcount": "14"})
    assert response.status_code in (302, 303)
    assert response.headers["Location"].endswith(f"/bookings/{booking.id}")
    assert snapshot(booking.id) == (before[0] + 1, BookingStatus.CONFIRMED, 14, before[3] + 1)
    assert "参加人数已修改" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert remaining(client.get(f"/slots/{scene.slot.id}").get_data(as_text=True)) == 16


def test_secretary_changes_their_headcount_with_htmx(scene, client_as, booking, htmx_headers):
    response = client_as(scene.secretary).post(
        f"/bookings/{booking.id}/headcount", data={"headcount": "4"}, headers=htmx_headers
    )
    html = assert_htmx_change(response, 'id="booking-detail"')
    assert "参加人数已修改" in html and "10 → 4" in html
    assert snapshot(booking.id)[2] == 4


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_secretary_cannot_change_another_branchs_headcount(scene, client_as, booking, htmx):
    before = snapshot(booking.id)
    headers = {"HX-Request": "true"} if htmx else {}
    response = client_as(scene.other_secretary).post(
        f"/bookings/{booking.id}/headcount", data={"headcount": "3"}, headers=headers
    )
    assert response.status_code in (403, 404)
    assert snapshot(booking.id) == before


@pytest.mark.parametrize("role", ["host", "other_host", "admin"])
def test_host_and_admin_cannot_change_a_branchs_headcount(scene, client_as, booking, role):
    before = snapshot(booking.id)
    response = client_as(getattr(scene, role)).post(f"/bookings/{booking.id}/headcount", data={"headcount": "3"})
    assert response.status_code in (403, 404)
    assert snapshot(booking.id) == before


def test_anonymous_cannot_change_a_headcount(client_as, booking):
    before = snapshot(booking.id)
    assert_login_redirect(client_as(None).post(f"/bookings/{booking.id}/headcount", data={"headcount": "3"}))
    assert snapshot(booking.id) == before


@pytest.mark.parametrize("value,message", [
    ("", "请填写整数人数"),
    ("abc", "请填写整数人数"),
    ("-1", "请填写整数人数"),
    ("0", "请填写整数人数"),
    ("21", "该服务包每批接待1至20人"),
])
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_secretary_bad_headcount_change_gets_a_chinese_message_and_changes_nothing(
        scene, client_as, booking, value, message, htmx):
    before = snapshot(booking.id)
    headers = {"HX-Request": "true"} if htmx else {}
    response = client_as(scene.secretary).post(
        f"/bookings/{booking.id}/headcount", data={"headcount": value}, headers=headers
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html and ("<html" in html) is not htmx
    assert "HX-Trigger" not in response.headers
    assert snapshot(booking.id) == before


def test_secretary_cannot_raise_headcount_beyond_places_left(scene, client_as, booking):
    f.create_booking(slot=scene.slot, headcount=15)  # 30 - 10 - 15 = 5 left
    before = snapshot(booking.id)
    response = client_as(scene.secretary).post(f"/bookings/{booking.id}/headcount", data={"headcount": "16"})
    assert response.status_code == 422
    assert "最多只能再增加5人" in response.get_data(as_text=True)
    assert snapshot(booking.id) == before


def test_secretary_cannot_change_headcount_after_the_cutoff(scene, client_as, frozen_now):
    from blueprints.booking import services

    slot = f.create_slot(package=scene.package, station=scene.station, starts_at=FROZEN_NOW + timedelta(hours=30))
    made = services.book(scene.secretary, slot.id, services.BookingRequest(5, "王书记", "13912345678"))
    frozen_now.set(FROZEN_NOW + timedelta(hours=7))  # 23 hours before the start, cut-off is 24
    before = snapshot(made.id)
    response = client_as(scene.secretary).post(f"/bookings/{made.id}/headcount", data={"headcount": "6"})
    assert response.status_code == 422
    assert "已截止预约" in response.get_data(as_text=True)
    assert snapshot(made.id) == before


def test_secretary_cannot_change_headcount_of_a_cancelled_booking(scene, client_as, booking):
    from blueprints.booking import services

    services.cancel(scene.secretary, booking.id, "")
    before = snapshot(booking.id)
    response = client_as(scene.secretary).post(f"/bookings/{booking.id}/headcount", data={"headcount": "6"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "该预约已无法修改" in html and 'role="alert"' in html
    assert snapshot(booking.id) == before


# == POST /bookings/<id>/cancel =============================================================

def test_secretary_cancels_their_booking_without_javascript(scene, client_as, booking):
    before = snapshot(booking.id)
    client = client_as(scene.secretary)
    response = client.post(f"/bookings/{booking.id}/cancel", data={"reason": "支部活动改期"})
    assert response.status_code in (302, 303)
    assert response.headers["Location"].endswith(f"/bookings/{booking.id}")
    assert snapshot(booking.id) == (before[0] + 1, BookingStatus.CANCELLED, 10, before[3] + 1)
    assert "预约已取消" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert remaining(client.get(f"/slots/{scene.slot.id}").get_data(as_text=True)) == 30


def test_secretary_cancels_their_booking_with_htmx(scene, client_as, booking, htmx_headers):
    response = client_as(scene.secretary).post(
        f"/bookings/{booking.id}/cancel", data={"reason": ""}, headers=htmx_headers
    )
    html = assert_htmx_change(response, 'id="booking-detail"')
    assert "预约已取消" in html and 'data-status="cancelled"' in html
    assert snapshot(booking.id)[1] is BookingStatus.CANCELLED


def test_secretary_cancelling_promotes_the_waitlist(scene, client_as, booking):
    f.create_booking(slot=scene.slot, headcount=20)  # full now
    waiting_client = client_as(scene.other_secretary)
    book_as_secretary(waiting_client, scene.slot, headcount="5", waitlist="1")
    waiting = db.session.scalar(sa.select(Booking).where(
        Booking.organisation_id == scene.other_secretary.organisation_id))
    assert waiting.status is BookingStatus.WAITLISTED
    client_as(scene.secretary).post(f"/bookings/{booking.id}/cancel", data={"reason": ""})
    assert snapshot(waiting.id)[1] is BookingStatus.CONFIRMED
    inbox = waiting_client.get("/notifications").get_data(as_text=True)
    assert "名额" in inbox


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_secretary_cannot_cancel_another_branchs_booking(scene, client_as, booking, htmx):
    before = snapshot(booking.id)
    headers = {"HX-Request": "true"} if htmx else {}
    response = client_as(scene.other_secretary).post(
        f"/bookings/{booking.id}/cancel", data={"reason": "恶意取消"}, headers=headers
    )
    assert response.status_code in (403, 404)
    assert "HX-Trigger" not in response.headers
    assert snapshot(booking.id) == before


def test_host_cancels_a_booking_of_their_station_with_a_reason(scene, client_as, booking):
    before = snapshot(booking.id)
    response = client_as(scene.host).post(f"/bookings/{booking.id}/cancel", data={"reason": "场地维修"})
    assert response.status_code in (302, 303)
    assert snapshot(booking.id) == (before[0] + 1, BookingStatus.CANCELLED, 10, before[3] + 1)
    inbox = client_as(scene.secretary).get("/notifications").get_data(as_text=True)
    assert "场地维修" in inbox


def test_host_must_give_the_branch_a_reason_to_cancel(scene, client_as, booking):
    before = snapshot(booking.id)
    response = client_as(scene.host).post(f"/bookings/{booking.id}/cancel", data={"reason": "  "})
    assert response.status_code == 422
    assert "请向支部说明原因" in response.get_data(as_text=True)
    assert snapshot(booking.id) == before


def test_host_cannot_cancel_a_booking_of_another_station(scene, client_as, booking):
    before = snapshot(booking.id)
    response = client_as(scene.other_host).post(f"/bookings/{booking.id}/cancel", data={"reason": "越权"})
    assert response.status_code in (403, 404)
    assert snapshot(booking.id) == before


def test_admin_cancels_any_booking_with_a_reason(scene, client_as, booking):
    response = client_as(scene.admin).post(f"/bookings/{booking.id}/cancel", data={"reason": "全区活动调整"})
    assert response.status_code in (302, 303)
    assert snapshot(booking.id)[1] is BookingStatus.CANCELLED


def test_anonymous_cannot_cancel(client_as, booking):
    before = snapshot(booking.id)
    assert_login_redirect(client_as(None).post(f"/bookings/{booking.id}/cancel", data={"reason": ""}))
    assert snapshot(booking.id) == before


def test_unknown_booking_cannot_be_cancelled(scene, client_as):
    assert client_as(scene.secretary).post("/bookings/999999/cancel", data={"reason": ""}).status_code == 404


def test_secretary_cannot_cancel_online_after_the_deadline(scene, client_as, frozen_now):
    from blueprints.booking import services

    slot = f.create_slot(package=scene.package, station=scene.station, starts_at=FROZEN_NOW + timedelta(hours=30))
    made = services.book(scene.secretary, slot.id, services.BookingRequest(5, "王书记", "13912345678"))
    frozen_now.set(FROZEN_NOW + timedelta(hours=7))
    before = snapshot(made.id)
    client = client_as(scene.secretary)
    page = client.get(f"/bookings/{made.id}").get_data(as_text=True)
    assert "开始前24小时起不能在线取消" in page and f'action="/bookings/{made.id}/cancel"' not in page
    response = client.post(f"/bookings/{made.id}/cancel", data={"reason": ""})
    assert response.status_code == 422
    assert "开始前24小时起不能在线取消，请致电七宝老街党群服务站：021-64001234" in response.get_data(as_text=True)
    assert snapshot(made.id) == before


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_secretary_cannot_cancel_an_already_cancelled_booking(scene, client_as, booking, htmx):
    client = client_as(scene.secretary)
    client.post(f"/bookings/{booking.id}/cancel", data={"reason": ""})
    before = snapshot(booking.id)
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.post(f"/bookings/{booking.id}/cancel", data={"reason": ""}, headers=headers)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "该预约已是“已取消”状态" in html and ("<html" in html) is not htmx
    assert snapshot(booking.id) == before


def test_secretary_overlong_cancel_reason_is_refused(scene, client_as, booking):
    before = snapshot(booking.id)
    response = client_as(scene.secretary).post(f"/bookings/{booking.id}/cancel", data={"reason": "因" * 501})
    assert response.status_code == 422
    assert "字段长度不能超过 500 个字符" in response.get_data(as_text=True)
    assert snapshot(booking.id) == before


# == GET /notifications and POST /notifications/read ========================================

def test_anonymous_is_sent_to_log_in_for_notifications(client_as):
    assert_login_redirect(client_as(None).get("/notifications"))
    assert_login_redirect(client_as(None).post("/notifications/read"))


def test_secretary_sees_only_their_own_notifications(scene, client_as, booking):
    mine = client_as(scene.secretary).get("/notifications")
    assert mine.status_code == 200
    html = assert_full_page(mine, 'id="notifications"')
    assert "已确认" in html and f'href="/bookings/{booking.id}"' in html
    theirs = client_as(scene.other_secretary).get("/notifications").get_data(as_text=True)
    assert f'href="/bookings/{booking.id}"' not in theirs


def test_host_sees_notifications_of_their_station(scene, client_as, booking):
    client_as(scene.secretary).post(f"/bookings/{booking.id}/cancel", data={"reason": ""})
    html = client_as(scene.host).get("/notifications").get_data(as_text=True)
    assert "新虹街道机关第一党支部" in html
    assert "新虹街道机关第一党支部" not in client_as(scene.other_host).get("/notifications").get_data(as_text=True)


def test_notifications_htmx_fragment(scene, client_as, booking, htmx_headers):
    response = client_as(scene.secretary).get("/notifications", headers=htmx_headers)
    assert response.status_code == 200
    html = assert_fragment(response, 'id="notifications"')
    assert html.lstrip().startswith('<section class="panel" id="notifications"')


def test_notifications_are_paginated(app, scene, client_as):
    for n in range(app.config["PAGE_SIZE"] + 2):
        db.session.add(Notification(user_id=scene.secretary.id, kind="confirmed",
                                    params={"package": f"包{n}", "station": "站", "when": "时间"}))
    client = client_as(scene.secretary)
    first = client.get("/notifications").get_data(as_text=True)
    second = client.get("/notifications?page=2").get_data(as_text=True)
    assert first.count('class="unread"') == app.config["PAGE_SIZE"] and 'rel="next"' in first
    assert second.count('class="unread"') == 2


def test_secretary_marks_their_notifications_read_without_javascript(scene, client_as, booking):
    other = Notification(user_id=scene.other_secretary.id, kind="confirmed", params={})
    db.session.add(other)
    client = client_as(scene.secretary)
    assert re.search(r'<span id="unread-badge"[^>]*>1</span>', client.get("/notifications").get_data(as_text=True))
    response = client.post("/notifications/read")
    assert response.status_code in (302, 303) and response.headers["Location"].endswith("/notifications")
    unread = db.session.scalar(sa.select(sa.func.count(Notification.id)).where(
        Notification.user_id == scene.secretary.id, Notification.read_at.is_(None)))
    assert unread == 0
    db.session.refresh(other)
    assert other.read_at is None  # someone else's inbox is untouched


def test_secretary_marks_notifications_read_with_htmx_and_the_badge_clears(scene, client_as, booking, htmx_headers):
    response = client_as(scene.secretary).post("/notifications/read", headers=htmx_headers)
    assert response.status_code == 200
    html = assert_fragment(response, 'id="notifications"')
    assert re.search(r'<span id="unread-badge" class="badge hidden"[^>]*hx-swap-oob="true"', html)
    assert 'class="unread"' not in html


# == CSRF ===================================================================================

@pytest.fixture
def csrf_app(tmp_path):
    application = create_app(app_config(f"sqlite:///{tmp_path / 'csrf.sqlite3'}", WTF_CSRF_ENABLED=True))
    application.test_client_class = SessionIsolatingClient
    with application.app_context():
        db.create_all()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def _csrf_login(client, username: str) -> str:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": username, "password": f.PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get("/bookings").get_data(as_text=True)
    return re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)


def test_with_csrf_on_a_secretarys_post_needs_the_token_and_htmx_sends_it_as_a_header(csrf_app):
    with csrf_app.test_request_context():
        slot = f.create_slot(capacity=30)
        secretary = f.create_secretary()
        slot_id, username = slot.id, secretary.username
        client = csrf_app.test_client()
        token = _csrf_login(client, username)

        refused = client.post(f"/slots/{slot_id}/book", data=GOOD_FORM)
        assert refused.status_code == 400 and "页面已过期" in refused.get_data(as_text=True)
        refused_htmx = client.post(f"/slots/{slot_id}/book", data=GOOD_FORM, headers={"HX-Request": "true"})
        assert refused_htmx.status_code == 400 and "<html" not in refused_htmx.get_data(as_text=True)
        assert bookings_of_slot(slot_id) == 0

        accepted = client.post(f"/slots/{slot_id}/book", data=GOOD_FORM,
                               headers={"HX-Request": "true", "X-CSRFToken": token})
        assert_htmx_change(accepted, 'id="booking-panel"')
        booking_id = db.session.scalar(sa.select(Booking.id).where(Booking.slot_id == slot_id))

        before = snapshot(booking_id)
        assert client.post(f"/bookings/{booking_id}/headcount", data={"headcount": "3"}).status_code == 400
        assert client.post(f"/bookings/{booking_id}/cancel", data={"reason": ""}).status_code == 400
        assert client.post("/notifications/read").status_code == 400
        assert snapshot(booking_id) == before

        changed = client.post(f"/bookings/{booking_id}/cancel", data={"reason": ""},
                              headers={"HX-Request": "true", "X-CSRFToken": token})
        assert_htmx_change(changed, 'id="booking-detail"')
        assert snapshot(booking_id)[1] is BookingStatus.CANCELLED

        # the forms carry the token too (no JavaScript)
        slot_page = client.get(f"/slots/{slot_id}").get_data(as_text=True)
        assert re.search(r'name="csrf_token" type="hidden" value="[^"]+"', slot_page)


# -- issue 12: deactivated organisations, re-approval ------------------------------------------

HX = {"HX-Request": "true"}


def test_secretary_of_a_deactivated_organisation_sees_why_on_the_slot_page_and_cannot_book(scene, client_as):
    client = client_as(scene.secretary)
    assert 'action="/slots/%d/book"' % scene.slot.id in client.get(f"/slots/{scene.slot.id}").get_data(as_text=True)
    scene.secretary.organisation.active = False
    db.session.commit()
    page = assert_full_page(client.get(f"/slots/{scene.slot.id}"), "已被区级管理员停用")
    assert 'action="/slots/%d/book"' % scene.slot.id not in page
    assert_fragment(client.get(f"/slots/{scene.slot.id}", headers=HX), "已被区级管理员停用")
    response = client.post(f"/slots/{scene.slot.id}/book",
                           data={"headcount": "5", "contact_name": "王书记", "contact_phone": "13912345678"})
    assert response.status_code == 422 and "已被区级管理员停用" in response.get_data(as_text=True)
    assert bookings_of_slot(scene.slot.id) == 0


def test_secretary_raising_a_confirmed_booking_at_an_approval_station_is_told_it_goes_back_for_approval(
        scene, client_as):
    scene.station.requires_approval = True
    db.session.commit()
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, headcount=5)
    client = client_as(scene.secretary)
    assert_full_page(client.get(f"/bookings/{booking.id}"), "须经站点重新审核")
    response = client.post(f"/bookings/{booking.id}/headcount", data={"headcount": "8"}, follow_redirects=True)
    assert "站点将重新审核" in response.get_data(as_text=True)
    db.session.expire_all()
    changed = db.session.get(Booking, booking.id)
    assert (changed.status, changed.headcount) == (BookingStatus.PENDING, 8)
    host_inbox = db.session.scalars(sa.select(Notification).where(Notification.user_id == scene.host.id)).all()
    assert [n.kind for n in host_inbox] == ["headcount_raised"]
    fragment = client.post(f"/bookings/{booking.id}/headcount", data={"headcount": "9"}, headers=HX)
    assert_fragment(fragment, "人数已修改")


@pytest.mark.parametrize("phone, dial", [("021-64001234", "02164001234"), ("021-64001234-801", "02164001234,801"),
                                         ("13912345678", "13912345678")])
def test_station_phone_is_a_tap_to_call_link_on_slot_package_and_booking_pages(scene, client_as, phone, dial):
    scene.station.phone = phone
    db.session.commit()
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation)
    link = f'<a class="phone" href="tel:{dial}">{phone}</a>'
    client = client_as(scene.secretary)
    for path in (f"/slots/{scene.slot.id}", f"/packages/{scene.package.id}", f"/bookings/{booking.id}"):
        assert link in client.get(path).get_data(as_text=True), path
    assert link in client_as(None).get(f"/slots/{scene.slot.id}").get_data(as_text=True)


# == all field errors of a form in one round (issue 14) =====================================

def field_error(html: str, field: str) -> str:
    """The error text shown at one field of the form ("" when it has none)."""
    found = re.search(rf'<div class="field has-error[^"]*" id="field-{field}">.*?<p class="error" id="{field}-error"'
                      rf' role="alert">(.*?)</p>', html, re.S)
    return found.group(1) if found else ""


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_secretary_gets_a_too_large_group_and_a_bad_phone_in_one_round_and_books_nothing(scene, client_as, htmx):
    response = client_as(scene.secretary).post(
        f"/slots/{scene.slot.id}/book", data={**GOOD_FORM, "headcount": "999", "contact_phone": "12345"},
        headers=HX if htmx else {})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert ("<html" in html) is not htmx and "HX-Trigger" not in response.headers
    assert "该服务包每批接待1至20人" in field_error(html, "headcount")
    assert "请填写11位手机号码或带区号的固定电话" in field_error(html, "contact_phone")
    assert html.count("该服务包每批接待1至20人") == 1 and html.count("请填写11位手机号码") == 1
    assert 'aria-invalid="true"' in html and 'value="999"' in html and 'value="12345"' in html  # kept to correct
    assert bookings_of_slot(scene.slot.id) == 0


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_secretary_gets_the_forms_own_errors_with_the_places_left_and_may_join_the_waitlist(
        scene, client_as, htmx):
    f.create_booking(slot=scene.slot, headcount=20)  # 10 of 30 left
    client = client_as(scene.secretary)
    response = client.post(f"/slots/{scene.slot.id}/book",
                           data={**GOOD_FORM, "headcount": "15", "contact_name": "", "contact_phone": ""},
                           headers=HX if htmx else {})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "请填写联系人姓名" in field_error(html, "contact_name")
    assert "请填写联系电话" in field_error(html, "contact_phone")
    assert "仅剩10个名额" in field_error(html, "headcount")
    assert 'name="waitlist" value="1"' in html  # the places are the only rule refusing: the waitlist helps
    # Corrected in the second round, the same people join the waitlist.
    done = client.post(f"/slots/{scene.slot.id}/book", data={**GOOD_FORM, "headcount": "15", "waitlist": "1"})
    assert done.status_code in (302, 303)
    assert db.session.scalar(sa.select(Booking.status).where(
        Booking.organisation_id == scene.secretary.organisation_id)) is BookingStatus.WAITLISTED


def test_secretary_with_an_unreadable_headcount_is_not_told_about_group_sizes_too(scene, client_as):
    response = client_as(scene.secretary).post(
        f"/slots/{scene.slot.id}/book", data={**GOOD_FORM, "headcount": "abc", "contact_phone": "1391234567x"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(html, "headcount") == "请填写整数人数。"  # the form's message alone
    assert "请填写11位手机号码" in field_error(html, "contact_phone")  # and the domain's, in the same round


def test_secretary_over_the_quota_with_a_bad_phone_sees_both_above_and_at_the_field(scene, client_as):
    from blueprints.quotas.models import Quota, QuotaPeriod
    from blueprints.catalog.models import Category

    db.session.add(Quota(organisation_id=scene.secretary.organisation_id, category=Category.THEORY,
                         period=QuotaPeriod.YEAR, max_bookings=1))
    db.session.commit()
    f.create_booking(slot=f.create_slot(package=scene.package, station=scene.station),
                     organisation=scene.secretary.organisation)
    response = client_as(scene.secretary).post(
        f"/slots/{scene.slot.id}/book", data={**GOOD_FORM, "headcount": "25", "contact_phone": "123"}, headers=HX)
    html = assert_fragment(response, "每年最多")
    assert re.search(r'<div class="form-error" role="alert">\s*<p>[^<]*每年最多', html)  # the quota: the whole form
    assert "每批接待1至20人" in field_error(html, "headcount") and "11位手机号码" in field_error(html, "contact_phone")
    assert bookings_of_slot(scene.slot.id) == 0


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_secretary_of_a_deactivated_organisation_raising_beyond_the_group_size_sees_both_reasons(
        scene, client_as, booking, htmx):
    scene.secretary.organisation.active = False
    db.session.commit()
    before = snapshot(booking.id)
    response = client_as(scene.secretary).post(f"/bookings/{booking.id}/headcount", data={"headcount": "25"},
                                               headers=HX if htmx else {})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert ("<html" in html) is not htmx
    errors = field_error(html, "headcount")
    assert "该服务包每批接待1至20人" in errors and "已被区级管理员停用" in errors
    assert snapshot(booking.id) == before


# == one word per concept: the organisation names itself by its kind (issue 14) =============

from blueprints.accounts.models import OrganisationKind  # noqa: E402

OWN_NAMES = [(OrganisationKind.BRANCH, "本支部"), (OrganisationKind.REGIONAL_UNIT, "本单位"),
             (OrganisationKind.GENERAL_BRANCH, "本组织"), (OrganisationKind.PARTY_COMMITTEE, "本组织")]


@pytest.mark.parametrize("kind,own", OWN_NAMES, ids=[k.value for k, _ in OWN_NAMES])
def test_secretary_sees_the_booking_panel_name_their_organisation_by_its_kind(scene, client_as, kind, own):
    scene.secretary.organisation.kind = kind
    db.session.commit()
    client = client_as(scene.secretary)
    page = assert_full_page(client.get(f"/slots/{scene.slot.id}"), f"为{own}预约")
    assert "本支部" not in page if own != "本支部" else True
    assert_fragment(client.get(f"/slots/{scene.slot.id}", headers=HX), f"为{own}预约")
    book_as_secretary(client, scene.slot)
    assert f"{own}的预约：" in client.get(f"/slots/{scene.slot.id}").get_data(as_text=True)
    again = client.post(f"/slots/{scene.slot.id}/book", data=GOOD_FORM, follow_redirects=True)
    assert f"{own}已预约过该场次" in again.get_data(as_text=True)


def test_secretary_sees_the_panel_follow_a_change_of_the_organisations_kind(scene, client_as):
    """The panel is kept in the render cache per user and organisation: its kind is part of the key."""
    client = client_as(scene.secretary)
    assert "为本支部预约" in client.get(f"/slots/{scene.slot.id}").get_data(as_text=True)
    scene.secretary.organisation.kind = OrganisationKind.REGIONAL_UNIT
    db.session.commit()
    page = client.get(f"/slots/{scene.slot.id}").get_data(as_text=True)
    assert "为本单位预约" in page and "本支部" not in page


def test_visitor_host_and_admin_see_a_panel_that_names_no_organisation(scene, client_as):
    for user in (None, scene.host, scene.admin):
        page = client_as(user).get(f"/slots/{scene.slot.id}").get_data(as_text=True)
        assert "预约本场次" in page and "本支部" not in page and "本组织" not in page


def test_secretary_in_english_books_for_their_unit(scene, client_as):
    scene.secretary.organisation.kind = OrganisationKind.REGIONAL_UNIT
    db.session.commit()
    client = client_as(scene.secretary)
    client.post("/lang", data={"lang": "en", "next": "/"})
    assert "Book for your unit" in client.get(f"/slots/{scene.slot.id}").get_data(as_text=True)


def test_pages_say_every_batch_of_people_with_one_word(scene, client_as):
    scene.slot.max_groups = 3
    db.session.commit()
    client = client_as(scene.secretary)
    slot_page = client.get(f"/slots/{scene.slot.id}").get_data(as_text=True)
    assert "最多3批" in slot_page and "每批人数" in slot_page
    package_page = client.get(f"/packages/{scene.package.id}").get_data(as_text=True)
    assert "每批 1–20 人" in package_page
    for html in (slot_page, package_page, client.get("/").get_data(as_text=True)):
        for word in ("每组", "团体", "团队", "后台管理"):
            assert word not in html


# == the station's street address and a map link (issue 14) ==================================

ADDRESS = "上海市闵行区七宝镇青年路88号3号楼201室"
MAP_URL = ("https://uri.amap.com/search?keyword=%E4%B8%8A%E6%B5%B7%E5%B8%82%E9%97%B5%E8%A1%8C%E5%8C%BA%E4%B8%83"
           "%E5%AE%9D%E9%95%87%E9%9D%92%E5%B9%B4%E8%B7%AF88%E5%8F%B73%E5%8F%B7%E6%A5%BC201%E5%AE%A4"
           "&amp;view=map&amp;src=partyday&amp;callnative=1")


def test_station_address_shows_whole_with_a_map_link_on_slot_package_and_booking_pages(scene, client_as):
    scene.station.address = ADDRESS
    db.session.commit()
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation)
    # the numbers with their units kept together; the Chinese between them wraps as usual
    shown = '<span class="address">上海市闵行区七宝镇青年路<span class="address-number">88号3号楼201室</span></span>'
    link = (f'<a class="map-link" href="{MAP_URL}" target="_blank" rel="noopener noreferrer">在地图中打开'
            '<span class="visually-hidden">：七宝老街党群服务站（在新标签页中打开）</span></a>')
    secretary, visitor = client_as(scene.secretary), client_as(None)
    for client, path in ((secretary, f"/slots/{scene.slot.id}"), (secretary, f"/packages/{scene.package.id}"),
                         (secretary, f"/bookings/{booking.id}"), (visitor, f"/slots/{scene.slot.id}"),
                         (visitor, f"/packages/{scene.package.id}")):
        html = client.get(path).get_data(as_text=True)
        assert shown in html and link in html, path


def test_station_address_is_escaped_in_the_page_and_encoded_in_the_map_link(scene, client_as):
    scene.station.address = '徐汇区龙腾大道<b>"2"</b>&号'
    db.session.commit()
    html = client_as(None).get(f"/packages/{scene.package.id}").get_data(as_text=True)
    assert '龙腾大道<b>' not in html and '龙腾大道&lt;<span class="address-number">b</span>&gt;&#34;' in html
    assert ("keyword=%E5%BE%90%E6%B1%87%E5%8C%BA%E9%BE%99%E8%85%BE%E5%A4%A7%E9%81%93"
            "%3Cb%3E%222%22%3C/b%3E%26%E5%8F%B7&amp;view=map") in html


def test_station_without_an_address_has_no_map_link(scene, client_as):
    scene.station.address = ""
    db.session.commit()
    for path in (f"/slots/{scene.slot.id}", f"/packages/{scene.package.id}"):
        assert "uri.amap.com" not in client_as(None).get(path).get_data(as_text=True), path
