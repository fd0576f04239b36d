"""Moving a booking to another slot (改期, issue 15 item 2): the domain rule ``services.move``,
the page ``GET /bookings/<id>/move`` and its form ``POST /bookings/<id>/move`` (``slot_id``),
who may use them, bad input, the calendar feeds and the render cache after a move."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import icalendar
import pytest
import sqlalchemy as sa

from blueprints.accounts.models import User
from blueprints.quotas.models import Quota, QuotaPeriod
from blueprints.booking import services
from blueprints.booking.capacity import availability
from blueprints.booking.models import Booking, BookingEvent, BookingStatus, Notification
from blueprints.booking.notifications import message_for
from blueprints.catalog.models import Package, Slot, SlotStatus, Station
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.feeds import ics
from blueprints.feeds import services as feed_services

from . import factories as f
from .test_booking_routes import hash_the_test_password_once  # noqa: F401 - autouse: scrypt once

S = BookingStatus


@dataclass
class Scene:
    package: Package
    station: Station  # the booking's station
    other_station: Station  # offers the same package
    old: Slot
    new: Slot
    secretary: User
    host: User
    other_host: User


@pytest.fixture
def scene(frozen_now) -> Scene:
    station = f.create_station(name="七宝老街党群服务站", address="闵行区七宝镇青年路1号")
    other_station = f.create_station(name="虹桥天地党群服务站", address="闵行区申长路688号")
    package = f.create_package(title="进博·理论学习包", stations=[station, other_station], max_group_size=40)
    now = frozen_now.now
    old = f.create_slot(package=package, station=station, capacity=20, starts_at=now + timedelta(days=7))
    new = f.create_slot(package=package, station=other_station, capacity=20, starts_at=now + timedelta(days=8))
    return Scene(package, station, other_station, old, new, f.create_secretary(),
                 f.create_host(stations=[station]), f.create_host(stations=[other_station]))


def request(headcount: int = 10) -> services.BookingRequest:
    return services.BookingRequest(headcount=headcount, contact_name="王书记", contact_phone="13912345678")


def book(user, slot, headcount: int = 10, **kwargs) -> Booking:
    return services.book(user, slot.id, request(headcount), **kwargs)


def state(booking_id: int) -> tuple:
    """Everything a refused move must leave as it was."""
    db.session.rollback()
    booking = db.session.get(Booking, booking_id)
    return (booking.slot_id, booking.status, booking.revision, booking.headcount,
            db.session.scalar(sa.select(sa.func.count(BookingEvent.id))),
            db.session.scalar(sa.select(sa.func.count(Notification.id))),
            tuple(db.session.scalars(sa.select(Slot.revision).order_by(Slot.id))))


def refused(user, booking, slot_id) -> services.BookingError:
    before = state(booking.id)
    with pytest.raises(services.BookingError) as caught:
        services.move(user, booking.id, slot_id)
    assert state(booking.id) == before
    assert caught.value.field == "slot_id"
    return caught.value


# -- the rule ---------------------------------------------------------------------------------

def test_move_keeps_the_booking_and_moves_its_places(scene):
    booking = book(scene.secretary, scene.old)
    revision = booking.revision
    moved = services.move(scene.secretary, booking.id, scene.new.id)
    db.session.expire_all()
    assert moved.id == booking.id and moved.slot_id == scene.new.id and moved.status is S.CONFIRMED
    assert moved.headcount == 10 and moved.revision > revision
    assert availability(scene.old.id).held == 0 and availability(scene.new.id).held == 10
    event = moved.events[-1]
    assert (event.action, event.from_status, event.to_status, event.actor_id) == (
        "moved", S.CONFIRMED, S.CONFIRMED, scene.secretary.id)
    assert event.detail == "2026-11-30 10:00–12:00 七宝老街党群服务站 → 2026-12-01 10:00–12:00 虹桥天地党群服务站"
    assert len(moved.events) == moved.revision + 1


def test_move_to_a_station_that_approves_makes_the_booking_pending_again(scene):
    scene.other_station.requires_approval = True
    db.session.commit()
    booking = book(scene.secretary, scene.old)
    assert services.move(scene.secretary, booking.id, scene.new.id).status is S.PENDING
    assert availability(scene.new.id).held == 10  # a pending booking holds its places


def test_move_of_a_pending_booking_to_a_station_that_does_not_approve_confirms_it(scene):
    scene.station.requires_approval = True
    db.session.commit()
    booking = book(scene.secretary, scene.old)
    assert booking.status is S.PENDING
    assert services.move(scene.secretary, booking.id, scene.new.id).status is S.CONFIRMED


def test_move_within_the_quarter_under_a_one_per_quarter_quota_works(scene):
    db.session.add(Quota(organisation_id=scene.secretary.organisation_id, category=scene.package.category,
                         period=QuotaPeriod.QUARTER, max_bookings=1))
    db.session.commit()
    booking = book(scene.secretary, scene.old)
    assert services.move(scene.secretary, booking.id, scene.new.id).slot_id == scene.new.id


def test_move_into_a_quarter_whose_quota_is_used_up_is_refused(scene, frozen_now):
    db.session.add(Quota(organisation_id=scene.secretary.organisation_id, category=scene.package.category,
                         period=QuotaPeriod.QUARTER, max_bookings=1))
    db.session.commit()
    next_quarter = [f.create_slot(package=scene.package, station=scene.station,
                                  starts_at=frozen_now.now + timedelta(days=days)) for days in (45, 46)]
    book(scene.secretary, next_quarter[0])
    booking = book(scene.secretary, scene.old)
    error = refused(scene.secretary, booking, next_quarter[1].id)
    assert "最多" in error.message


def test_move_serves_the_old_slots_waitlist(scene):
    scene.old.capacity = 10
    db.session.commit()
    booking = book(scene.secretary, scene.old, 10)
    waiting = book(f.create_secretary(), scene.old, 5, join_waitlist=True)
    assert waiting.status is S.WAITLISTED
    services.move(scene.secretary, booking.id, scene.new.id)
    db.session.expire_all()
    assert db.session.get(Booking, waiting.id).status is S.CONFIRMED
    assert availability(scene.old.id).held == 5


def test_a_waitlisted_booking_moves_into_free_places_elsewhere_but_not_onto_another_waitlist(scene, frozen_now):
    scene.old.capacity = 5
    db.session.commit()
    book(f.create_secretary(), scene.old, 5)
    waiting = book(scene.secretary, scene.old, 5, join_waitlist=True)
    full = f.create_slot(package=scene.package, station=scene.other_station, capacity=5,
                         starts_at=frozen_now.now + timedelta(days=9))
    book(f.create_secretary(), full, 5)
    assert "仅剩0个名额" in refused(scene.secretary, waiting, full.id).message
    moved = services.move(scene.secretary, waiting.id, scene.new.id)
    assert moved.status is S.CONFIRMED and availability(scene.new.id).held == 5


@pytest.mark.parametrize("status", [S.CANCELLED, S.DECLINED, S.ATTENDED, S.NO_SHOW])
def test_a_booking_that_holds_nothing_to_move_cannot_move(scene, status):
    booking = f.create_booking(slot=scene.old, organisation=scene.secretary.organisation, status=status)
    assert "无法改期" in refused(scene.secretary, booking, scene.new.id).message


def test_move_after_the_cancel_deadline_says_to_call_the_station(scene, frozen_now):
    booking = book(scene.secretary, scene.old)
    frozen_now.set(scene.old.starts_at - timedelta(hours=23))  # the deadline is 24 hours before
    message = refused(scene.secretary, booking, scene.new.id).message
    assert message == "开始前24小时起不能在线改期，请致电七宝老街党群服务站：021-64000000。"
    assert not db.session.get(Booking, booking.id).can_move(scene.secretary, clock.now())


def _closed(scene, slot):
    slot.status = SlotStatus.CLOSED


def _cancelled(scene, slot):
    slot.status = SlotStatus.CANCELLED


def _started(scene, slot):
    slot.starts_at = scene.old.starts_at - timedelta(days=30)
    slot.ends_at = slot.starts_at + timedelta(hours=2)


def _past_cutoff(scene, slot):
    slot.starts_at = scene.old.starts_at - timedelta(days=6, hours=12)  # 12 hours from now
    slot.ends_at = slot.starts_at + timedelta(hours=2)


def _full(scene, slot):
    slot.capacity = 9


def _groups_full(scene, slot):
    slot.max_groups = 1
    f.create_booking(slot=slot, headcount=1)


def _other_package(scene, slot):
    slot.package = f.create_package(stations=[scene.other_station])


def _not_offered(scene, slot):
    scene.package.stations.remove(scene.other_station)


def _inactive_station(scene, slot):
    scene.other_station.active = False


def _already_booked(scene, slot):
    f.create_booking(slot=slot, organisation=scene.secretary.organisation, headcount=2)


@pytest.mark.parametrize(("change", "words"), [
    (_closed, "已停止预约"), (_cancelled, "已取消"), (_started, "已经开始"), (_past_cutoff, "请致电"),
    (_full, "仅剩9个名额，不够10人"), (_groups_full, "不够10人"), (_other_package, "同一服务包"),
    (_not_offered, "不再提供"), (_inactive_station, "不再提供"), (_already_booked, "已预约过该场次"),
], ids=lambda value: getattr(value, "__name__", "")[1:] or None)
def test_move_to_a_slot_the_branch_could_not_book_is_refused_and_changes_nothing(scene, change, words):
    booking = book(scene.secretary, scene.old)
    change(scene, scene.new)
    db.session.commit()
    assert words in refused(scene.secretary, booking, scene.new.id).message


def test_move_to_the_same_slot_or_no_slot_is_refused(scene):
    booking = book(scene.secretary, scene.old)
    assert "已在这个场次" in refused(scene.secretary, booking, scene.old.id).message
    assert "请从列出的场次中选择" in refused(scene.secretary, booking, 999999).message


def test_a_deactivated_organisation_cannot_move(scene):
    booking = book(scene.secretary, scene.old)
    scene.secretary.organisation.active = False
    db.session.commit()
    assert "停用" in refused(scene.secretary, booking, scene.new.id).message


def test_secretary_cannot_move_another_branchs_booking_nor_a_host_or_admin_any(scene):
    booking = book(scene.secretary, scene.old)
    for user in (f.create_secretary(), scene.host, f.create_admin()):
        with pytest.raises(services.NotAllowed):
            services.move(user, booking.id, scene.new.id)
    assert db.session.get(Booking, booking.id).slot_id == scene.old.id


def test_both_stations_hosts_and_the_branch_are_told(scene, frozen_now):
    booking = book(scene.secretary, scene.old)
    colleague = f.create_secretary(organisation=scene.secretary.organisation)
    services.move(scene.secretary, booking.id, scene.new.id)
    kinds = {(n.user_id, n.kind): n for n in db.session.scalars(
        sa.select(Notification).where(Notification.kind.like("moved%")))}
    assert set(kinds) == {(scene.host.id, "moved_out"), (scene.other_host.id, "moved_in"),
                          (scene.secretary.id, "moved"), (colleague.id, "moved")}
    from flask_babel import force_locale

    with force_locale("zh_CN"):
        out = message_for("moved_out", kinds[(scene.host.id, "moved_out")].params)
        into = message_for("moved_in", kinds[(scene.other_host.id, "moved_in")].params)
        mine = message_for("moved", kinds[(scene.secretary.id, "moved")].params)
    organisation = scene.secretary.organisation.name
    assert out.startswith(f"{organisation}已将11月30日周一 10:00–12:00的进博·理论学习包预约（10人）改期至12月1日周二")
    assert "虹桥天地党群服务站" in out and "名额已释放" in out
    assert "从11月30日周一 10:00–12:00（七宝老街党群服务站）改期至12月1日周二 10:00–12:00（虹桥天地党群服务站）" in into
    assert mine.endswith("当前状态：已确认。") and "您预约的进博·理论学习包已从" in mine


def test_a_move_within_one_station_tells_its_hosts_once(scene, frozen_now):
    later = f.create_slot(package=scene.package, station=scene.station, starts_at=frozen_now.now + timedelta(days=9))
    booking = book(scene.secretary, scene.old)
    services.move(scene.secretary, booking.id, later.id)
    assert [n.kind for n in db.session.scalars(sa.select(Notification).where(
        Notification.user_id == scene.host.id, Notification.kind.like("moved%")))] == ["moved_in"]


def test_after_a_move_only_the_new_stations_host_decides_the_booking(scene):
    scene.other_station.requires_approval = True
    db.session.commit()
    booking = book(scene.secretary, scene.old)
    services.move(scene.secretary, booking.id, scene.new.id)
    with pytest.raises(services.NotAllowed):
        services.approve(scene.host, booking.id)  # it locks the slot the booking is on now
    assert services.approve(scene.other_host, booking.id).status is S.CONFIRMED


# -- calendar sequences -------------------------------------------------------------------------

def test_the_bookings_calendar_sequence_rises_even_onto_a_slot_of_a_lower_revision(scene):
    scene.old.revision = 5  # the station moved it five times
    db.session.commit()
    booking = book(scene.secretary, scene.old)
    before = ics.booking_sequence(booking)
    services.move(scene.secretary, booking.id, scene.new.id)
    db.session.expire_all()
    assert ics.booking_sequence(db.session.get(Booking, booking.id)) > before


def _host_sequences(slot_ids) -> dict[int, int]:
    totals = feed_services.all_bookings_of_slots(slot_ids)
    return {s.id: s.revision + sum(totals.get(s.id, (0, 0)))
            for s in db.session.scalars(sa.select(Slot).where(Slot.id.in_(slot_ids)))}


def test_the_old_slots_host_event_sequence_rises_when_a_booking_leaves_it(scene):
    booking = book(scene.secretary, scene.old)
    book(f.create_secretary(), scene.old, 4)
    services.change_headcount(scene.secretary, booking.id, 11)  # a revision that leaves with it
    before = _host_sequences([scene.old.id, scene.new.id])
    services.move(scene.secretary, booking.id, scene.new.id)
    db.session.expire_all()
    after = _host_sequences([scene.old.id, scene.new.id])
    assert after[scene.old.id] > before[scene.old.id] and after[scene.new.id] > before[scene.new.id]


# -- the page and the form ----------------------------------------------------------------------

def login_as(client, login, user):
    login(user)
    return client


def test_move_page_lists_the_other_open_slots_grouped_by_day(client, login, scene, frozen_now):
    booking = book(scene.secretary, scene.old)
    same_day = f.create_slot(package=scene.package, station=scene.station,
                             starts_at=scene.new.starts_at + timedelta(hours=4), capacity=8)  # too few places
    closed = f.create_slot(package=scene.package, station=scene.station, status=SlotStatus.CLOSED,
                           starts_at=frozen_now.now + timedelta(days=10))
    soon = f.create_slot(package=scene.package, station=scene.station, starts_at=frozen_now.now + timedelta(hours=6))
    other = f.create_slot(station=scene.station, starts_at=frozen_now.now + timedelta(days=8))  # another package
    taken = f.create_slot(package=scene.package, station=scene.other_station, starts_at=frozen_now.now + timedelta(days=11))
    f.create_booking(slot=taken, organisation=scene.secretary.organisation, headcount=2)
    elsewhere = f.create_station()  # does not offer the package (any more)
    not_offered = f.create_slot(package=scene.package, station=elsewhere, starts_at=frozen_now.now + timedelta(days=9))
    closed_station = f.create_station(active=False)
    scene.package.stations.append(closed_station)
    inactive = f.create_slot(package=scene.package, station=closed_station, starts_at=frozen_now.now + timedelta(days=9))
    login(scene.secretary)
    response = client.get(f"/bookings/{booking.id}/move")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<title>改期" in html
    assert "当前场次" in html and "11月30日周一 10:00–12:00" in html
    listed = [int(i) for i in re.findall(r'<li class="move-choice[^"]*" data-slot-id="(\d+)"', html)]
    assert listed == [scene.new.id, same_day.id, taken.id]
    for excluded in (scene.old, closed, soon, other, not_offered, inactive):
        assert f'value="{excluded.id}"' not in html
    assert html.count('<h3 class="move-day">') == 2  # 12月1日 (two slots) and 12月4日
    assert "闵行区申长路688号" in html and "虹桥天地党群服务站" in html
    assert re.search(rf'value="{scene.new.id}"(?! disabled)', html)
    assert re.search(rf'value="{same_day.id}" disabled', html) and "名额不足：仅剩8个，您的预约为10人" in html
    assert re.search(rf'value="{taken.id}" disabled', html) and "本支部已预约此场次" in html
    assert "共3个场次可选，每页20个" in html
    assert 'hx-post="/bookings/%d/move"' % booking.id in html


def test_move_page_of_a_deactivated_organisation_says_why_and_offers_no_form(client, login, scene):
    booking = book(scene.secretary, scene.old)
    scene.secretary.organisation.active = False
    db.session.commit()
    login(scene.secretary)
    html = client.get(f"/bookings/{booking.id}/move").get_data(as_text=True)
    assert "停用" in html and 'name="slot_id"' not in html


def test_move_page_for_htmx_is_the_form_alone(client, login, scene, htmx_headers):
    booking = book(scene.secretary, scene.old)
    login(scene.secretary)
    html = client.get(f"/bookings/{booking.id}/move", headers=htmx_headers).get_data(as_text=True)
    assert "<html" not in html and html.lstrip().startswith('<section class="panel move-panel" id="move-form"')


def test_move_page_after_the_deadline_says_whom_to_call_and_offers_no_form(client, login, scene, frozen_now):
    booking = book(scene.secretary, scene.old)
    frozen_now.set(scene.old.starts_at - timedelta(hours=2))
    login(scene.secretary)
    html = client.get(f"/bookings/{booking.id}/move").get_data(as_text=True)
    assert "不能在线改期，请致电七宝老街党群服务站" in html and 'name="slot_id"' not in html


def test_move_page_query_count_does_not_grow_with_the_slots(client, login, scene, frozen_now, count_queries):
    booking = book(scene.secretary, scene.old)
    login(scene.secretary)

    def counted():
        client.get(f"/bookings/{booking.id}/move")  # warm: the session's user, the badge
        with count_queries() as counter:
            assert client.get(f"/bookings/{booking.id}/move").status_code == 200
        return counter.count

    few = counted()
    for n in range(30):
        slot = f.create_slot(package=scene.package, station=(scene.station, scene.other_station)[n % 2],
                             starts_at=frozen_now.now + timedelta(days=9, hours=n))
        f.create_booking(slot=slot, headcount=3)
    many = counted()
    print(f"\nmove page: {few} statements with 1 other slot, {many} with 31")
    assert many == few <= 10, (few, many)


def test_secretary_moves_without_javascript_and_sees_it_on_the_booking_page(client, login, scene):
    booking = book(scene.secretary, scene.old)
    login(scene.secretary)
    response = client.post(f"/bookings/{booking.id}/move", data={"slot_id": str(scene.new.id)})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/bookings/{booking.id}")
    html = client.get(f"/bookings/{booking.id}").get_data(as_text=True)
    assert "已改期至12月1日周二 10:00–12:00（虹桥天地党群服务站）。" in html
    assert 'data-action="moved">已改期</span>' in html
    assert "2026-11-30 10:00–12:00 七宝老街党群服务站 → 2026-12-01 10:00–12:00 虹桥天地党群服务站" in html
    assert db.session.get(Booking, booking.id).slot_id == scene.new.id


def test_secretary_moves_with_htmx_and_is_sent_to_the_booking_page(client, login, scene, htmx_headers):
    import json

    booking = book(scene.secretary, scene.old)
    login(scene.secretary)
    response = client.post(f"/bookings/{booking.id}/move", data={"slot_id": str(scene.new.id)}, headers=htmx_headers)
    assert response.status_code == 204
    assert json.loads(response.headers["HX-Location"])["path"] == f"/bookings/{booking.id}"
    assert "booking-changed" in response.headers["HX-Trigger"]
    assert db.session.get(Booking, booking.id).slot_id == scene.new.id


@pytest.mark.parametrize(("slot_id", "words"), [
    (None, "请选择要改期到的场次"), ("", "请选择要改期到的场次"), ("abc", "请从列出的场次中选择"),
    ("１２", "请从列出的场次中选择"), ("-3", "请从列出的场次中选择"), ("999999", "请从列出的场次中选择"),
    ("old", "已在这个场次"), ("other_package", "同一服务包"), ("past", "已经开始"), ("closed", "已停止预约"),
    ("full", "仅剩"),
])
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_bad_slot_id_is_422_with_a_message_at_the_field_and_changes_nothing(
        client, login, scene, frozen_now, slot_id, words, htmx):
    booking = book(scene.secretary, scene.old)
    named = {
        "old": scene.old,
        "other_package": f.create_slot(station=scene.other_station, starts_at=frozen_now.now + timedelta(days=9)),
        "past": f.create_slot(package=scene.package, station=scene.other_station,
                              starts_at=frozen_now.now - timedelta(days=1)),
        "closed": f.create_slot(package=scene.package, station=scene.other_station, status=SlotStatus.CLOSED,
                                starts_at=frozen_now.now + timedelta(days=9)),
        "full": f.create_slot(package=scene.package, station=scene.other_station, capacity=5,
                              starts_at=frozen_now.now + timedelta(days=9)),
    }
    value = str(named[slot_id].id) if slot_id in named else slot_id
    login(scene.secretary)
    before = state(booking.id)
    data = {} if value is None else {"slot_id": value}
    response = client.post(f"/bookings/{booking.id}/move", data=data, headers={"HX-Request": "true"} if htmx else {})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert ("<html" in html) is not htmx
    error = re.search(r'<p class="error" id="slot_id-error" role="alert">([^<]*)</p>', html)
    assert error and words in error.group(1), html[-3000:]
    assert state(booking.id) == before


@pytest.mark.parametrize("who", ["host_of_the_station", "admin", "another_branchs_secretary"])
def test_only_the_branch_may_open_or_post_the_move_page_others_get_404(client, login, scene, who):
    booking = book(scene.secretary, scene.old)
    user = {"host_of_the_station": scene.host, "admin": f.create_admin(),
            "another_branchs_secretary": f.create_secretary()}[who]
    login(user)
    before = state(booking.id)
    assert client.get(f"/bookings/{booking.id}/move").status_code == 404
    assert client.post(f"/bookings/{booking.id}/move", data={"slot_id": str(scene.new.id)}).status_code == 404
    assert state(booking.id) == before


def test_anonymous_visitor_is_sent_to_log_in(client, scene):
    booking = f.create_booking(slot=scene.old, organisation=scene.secretary.organisation)
    response = client.get(f"/bookings/{booking.id}/move")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_booking_page_and_list_link_to_the_move_page_only_while_it_can_move(client, login, scene, frozen_now):
    booking = book(scene.secretary, scene.old)
    cancelled = f.create_booking(slot=scene.new, organisation=scene.secretary.organisation, status=S.CANCELLED)
    login(scene.secretary)
    link = f'href="/bookings/{booking.id}/move"'
    assert link in client.get(f"/bookings/{booking.id}").get_data(as_text=True)
    listing = client.get("/bookings").get_data(as_text=True)
    assert link in listing and f'href="/bookings/{cancelled.id}/move"' not in listing
    assert "改期：11月30日周一 10:00–12:00 进博·理论学习包" in listing
    assert "/move" not in client.get(f"/bookings/{cancelled.id}").get_data(as_text=True)
    frozen_now.set(scene.old.starts_at - timedelta(hours=2))
    assert link not in client.get(f"/bookings/{booking.id}").get_data(as_text=True)


def test_host_sees_no_move_link_on_the_booking_page(client, login, scene):
    booking = book(scene.secretary, scene.old)
    login(scene.host)
    assert "/move" not in client.get(f"/bookings/{booking.id}").get_data(as_text=True)


# -- what other pages show right after ------------------------------------------------------------

def _remaining(html: str) -> int:
    return int(re.search(r'data-remaining="(\d+)"', html).group(1))


def _listed_places(html: str, scene) -> tuple[int, int]:
    """Places left of the old and the new slot as a page listing them shows them."""
    def of(slot):
        found = re.search(rf'href="/slots/{slot.id}"[^>]*>.*?data-remaining="(\d+)"', html, re.S)
        return int(found.group(1))
    return of(scene.old), of(scene.new)


def test_old_and_new_slot_pages_and_the_package_page_show_the_move_at_once(client, login, scene):
    booking = book(scene.secretary, scene.old)
    old_page, new_page = f"/slots/{scene.old.id}", f"/slots/{scene.new.id}"
    assert _remaining(client.get(old_page).get_data(as_text=True)) == 10  # now in the render cache
    assert _remaining(client.get(new_page).get_data(as_text=True)) == 20
    package_page = f"/packages/{scene.package.id}"
    assert _listed_places(client.get(package_page).get_data(as_text=True), scene) == (10, 20)
    assert _listed_places(client.get("/").get_data(as_text=True), scene) == (10, 20)
    services.move(scene.secretary, booking.id, scene.new.id)
    assert _remaining(client.get(old_page).get_data(as_text=True)) == 20
    assert _remaining(client.get(new_page).get_data(as_text=True)) == 10
    assert _listed_places(client.get(package_page).get_data(as_text=True), scene) == (20, 10)
    assert _listed_places(client.get("/").get_data(as_text=True), scene) == (20, 10)
    login(scene.secretary)  # the branch's own panel of each slot too
    assert "本支部的预约" in client.get(new_page).get_data(as_text=True)
    assert "本支部的预约" not in client.get(old_page).get_data(as_text=True)


def _events(body: bytes) -> dict[str, icalendar.Event]:
    return {str(e["UID"]): e for e in icalendar.Calendar.from_ical(body).walk("VEVENT")}


def _token(user, kind: str) -> str:
    return next(s.token for s in feed_services.subscriptions_for(user) if getattr(s.kind, "value", s.kind) == kind)


def test_the_calendar_event_keeps_its_uid_and_raises_its_sequence_in_every_feed(client, login, scene):
    booking = book(scene.secretary, scene.old)
    stays = book(f.create_secretary(), scene.old, 4)  # the old slot stays in its host's feed
    branch, old_host, new_host = (f"/feeds/{_token(scene.secretary, 'organisation')}.ics",
                                  f"/feeds/{_token(scene.host, 'station')}.ics",
                                  f"/feeds/{_token(scene.other_host, 'station')}.ics")
    uid, old_uid, new_uid = ics.booking_uid(booking.id), ics.slot_uid(scene.old.id), ics.slot_uid(scene.new.id)
    before = _events(client.get(branch).data)[uid]
    old_before = _events(client.get(old_host).data)[old_uid]
    assert new_uid not in _events(client.get(new_host).data)
    login(scene.secretary)
    single_before = _events(client.get(f"/bookings/{booking.id}.ics").data)[uid]

    services.move(scene.secretary, booking.id, scene.new.id)

    after = _events(client.get(branch).data)[uid]
    assert after["SEQUENCE"] > before["SEQUENCE"]
    assert after.decoded("DTSTART") == scene.new.starts_at and "虹桥天地党群服务站" in str(after["LOCATION"])
    single = _events(client.get(f"/bookings/{booking.id}.ics").data)[uid]
    assert single["SEQUENCE"] > single_before["SEQUENCE"] and single.decoded("DTSTART") == scene.new.starts_at
    old_after = _events(client.get(old_host).data)[old_uid]
    assert old_after["SEQUENCE"] > old_before["SEQUENCE"]
    assert scene.secretary.organisation.name not in str(old_after["DESCRIPTION"]).replace("\n", "")
    assert f"{stays.organisation.name}" in str(old_after["DESCRIPTION"]).replace("\n", "")
    gained = _events(client.get(new_host).data)[new_uid]
    assert scene.secretary.organisation.name in str(gained["DESCRIPTION"]).replace("\n", "")


def test_the_old_stations_host_feed_drops_a_slot_left_without_bookings(client, scene):
    booking = book(scene.secretary, scene.old)
    old_host = f"/feeds/{_token(scene.host, 'station')}.ics"
    assert ics.slot_uid(scene.old.id) in _events(client.get(old_host).data)
    services.move(scene.secretary, booking.id, scene.new.id)
    assert ics.slot_uid(scene.old.id) not in _events(client.get(old_host).data)


def test_the_audit_trail_names_the_move(client, login, scene):
    booking = book(scene.secretary, scene.old)
    services.move(scene.secretary, booking.id, scene.new.id)
    login(f.create_admin())
    html = client.get("/admin/audit").get_data(as_text=True)
    assert "已改期" in html
    assert "2026-11-30 10:00–12:00 七宝老街党群服务站 → 2026-12-01 10:00–12:00 虹桥天地党群服务站" in html
