"""Calendar feed content: properties, raw bytes, two parsers, and round trips through the booking rules."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import icalendar
import pytest
import recurring_ical_events
import vobject

from blueprints.booking import services as booking_services
from blueprints.booking.models import ENDED_STATUSES, Booking, BookingStatus
from blueprints.booking.services import BookingRequest
from blueprints.catalog.models import SlotStatus
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.feeds import ics, services
from blueprints.feeds.models import FeedKind
from blueprints.feeds.routes import feed_document

from . import factories as f
from .conftest import FROZEN_NOW

SHANGHAI = clock.LOCAL_TZ


def parse(body: bytes) -> icalendar.Calendar:
    """Parse with icalendar and vobject; both must see the same events."""
    cal = icalendar.Calendar.from_ical(body)
    vcal = vobject.readOne(body.decode("utf-8"))
    ical_uids = sorted(str(e["UID"]) for e in cal.walk("VEVENT"))
    vobject_uids = sorted(e.uid.value for e in getattr(vcal, "vevent_list", []))
    assert ical_uids == vobject_uids
    for vevent in getattr(vcal, "vevent_list", []):
        assert vevent.dtstart.value.tzinfo is not None
    return cal


def events(body: bytes) -> dict[str, icalendar.Event]:
    return {str(e["UID"]): e for e in parse(body).walk("VEVENT")}


def org_feed(secretary):
    [sub] = services.subscriptions_for(secretary)
    return services.resolve(sub.token)


def station_feed(host, kind=FeedKind.STATION):
    subs = services.subscriptions_for(host)
    sub = next(s for s in subs if s.kind == kind)
    return services.resolve(sub.token)


@pytest.fixture
def scene(frozen_now):
    station = f.create_station(name="七宝老街党群服务站", address="闵行区七宝镇青年路1号", phone="021-64001234")
    package = f.create_package(title="进博·理论学习包", stations=[station])
    starts = datetime(2026, 11, 30, 10, 0, tzinfo=SHANGHAI)
    slot = f.create_slot(package=package, station=station, starts_at=starts, ends_at=starts + timedelta(hours=2))
    secretary = f.create_secretary()
    host = f.create_host(stations=[station])
    return station, package, slot, secretary, host


def book(secretary, slot, headcount=12):
    return booking_services.book(secretary, slot.id, BookingRequest(headcount, "李书记", "13812345678"))


# -- properties --------------------------------------------------------------------------------

def test_organisation_feed_has_calendar_and_event_properties(scene, app):
    station, package, slot, secretary, host = scene
    booking = book(secretary, slot)
    body = feed_document(org_feed(secretary))
    cal = parse(body)
    assert cal["VERSION"] == "2.0" and cal["METHOD"] == "PUBLISH" and cal["PRODID"]
    assert cal["X-WR-TIMEZONE"] == "Asia/Shanghai"
    assert secretary.organisation.name in str(cal["X-WR-CALNAME"]) and cal["NAME"] == cal["X-WR-CALNAME"]
    assert b"REFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n" in body and b"X-PUBLISHED-TTL:PT1H\r\n" in body
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Asia/Shanghai"]
    event = events(body)[f"booking-{booking.id}@partyday.local"]
    assert event["STATUS"] == "CONFIRMED" and event["SEQUENCE"] == 0
    assert str(event["SUMMARY"]) == "进博·理论学习包 · 七宝老街党群服务站"
    assert str(event["LOCATION"]) == "七宝老街党群服务站，闵行区七宝镇青年路1号"
    description = str(event["DESCRIPTION"])
    for part in ("理论学习", "人数：12", "李书记 13812345678", "021-64001234", "http://localhost/"):
        assert part in description
    assert str(event["URL"]).startswith("http://localhost/")
    assert b"DTSTART;TZID=Asia/Shanghai:20261130T100000\r\n" in body
    assert b"DTEND;TZID=Asia/Shanghai:20261130T120000\r\n" in body
    stamp = FROZEN_NOW.strftime("%Y%m%dT%H%M%SZ").encode()
    for name in (b"DTSTAMP", b"CREATED", b"LAST-MODIFIED"):
        assert name + b":" + stamp + b"\r\n" in body


def test_uid_domain_comes_from_config_not_server_name(scene, app, monkeypatch):
    station, package, slot, secretary, host = scene
    booking = book(secretary, slot)
    monkeypatch.setitem(app.config, "CALENDAR_UID_DOMAIN", "partyday.example.cn")
    assert f"booking-{booking.id}@partyday.example.cn" in events(feed_document(org_feed(secretary)))


@pytest.mark.parametrize("status,expected", [
    (BookingStatus.PENDING, "TENTATIVE"),
    (BookingStatus.CONFIRMED, "CONFIRMED"),
    (BookingStatus.ATTENDED, "CONFIRMED"),
    (BookingStatus.CANCELLED, "CANCELLED"),
    (BookingStatus.DECLINED, "CANCELLED"),
])
def test_booking_status_maps_to_calendar_status(scene, status, expected):
    station, package, slot, secretary, host = scene
    booking = f.create_booking(slot=slot, organisation=secretary.organisation, status=status)
    event = events(feed_document(org_feed(secretary)))[ics.booking_uid(booking.id)]
    assert event["STATUS"] == expected


@pytest.mark.parametrize("status", [BookingStatus.WAITLISTED, BookingStatus.NO_SHOW])
def test_waitlisted_and_no_show_bookings_are_not_in_the_organisation_feed(scene, status):
    station, package, slot, secretary, host = scene
    f.create_booking(slot=slot, organisation=secretary.organisation, status=status)
    assert events(feed_document(org_feed(secretary))) == {}


def test_cancelled_bookings_leave_the_feed_after_30_days(scene, frozen_now):
    station, package, slot, secretary, host = scene
    far = f.create_slot(package=package, station=station, starts_at=FROZEN_NOW + timedelta(days=60))
    booking = f.create_booking(slot=far, organisation=secretary.organisation, status=BookingStatus.CANCELLED)
    feed = org_feed(secretary)
    assert ics.booking_uid(booking.id) in events(feed_document(feed))
    before = services.freshness(feed)
    assert before.changes_at == booking.updated_at + timedelta(days=30)  # the cached document's expiry
    frozen_now.set(FROZEN_NOW + timedelta(days=31))
    assert ics.booking_uid(booking.id) not in events(feed_document(feed))
    assert services.freshness(feed).last_modified > before.last_modified


def test_other_organisations_bookings_are_not_in_the_feed(scene):
    station, package, slot, secretary, host = scene
    other = f.create_booking(slot=slot)
    assert ics.booking_uid(other.id) not in events(feed_document(org_feed(secretary)))


def test_station_feed_has_one_event_per_booked_slot_with_roster(scene):
    station, package, slot, secretary, host = scene
    book(secretary, slot, headcount=12)
    f.create_booking(slot=slot, headcount=8, contact_name="张三", status=BookingStatus.PENDING)
    f.create_slot(package=package, station=station, starts_at=FROZEN_NOW + timedelta(days=9))  # no bookings
    found = events(feed_document(station_feed(host)))
    assert list(found) == [ics.slot_uid(slot.id)]
    event = found[ics.slot_uid(slot.id)]
    assert "2 个组织，20 人" in str(event["SUMMARY"])
    description = str(event["DESCRIPTION"])
    assert secretary.organisation.name in description and "李书记 13812345678" in description
    assert "张三" in description and "待审核" in description


def test_public_feed_lists_open_future_slots_without_personal_data(scene, frozen_now):
    station, package, slot, secretary, host = scene
    book(secretary, slot, headcount=12)
    f.create_slot(package=package, station=station, status=SlotStatus.CANCELLED)
    f.create_slot(package=package, station=station, starts_at=FROZEN_NOW - timedelta(days=1))
    body = feed_document(station_feed(host, services.PUBLIC))
    found = events(body)
    assert list(found) == [ics.public_slot_uid(slot.id)]
    text = body.decode("utf-8")
    assert "18 / 30" in str(found[ics.public_slot_uid(slot.id)]["DESCRIPTION"])
    for private in ("李书记", "13812345678", secretary.organisation.name):
        assert private not in text


# -- raw bytes ----------------------------------------------------------------------------------

def test_raw_bytes_crlf_folding_and_no_split_utf8(scene):
    station, package, slot, secretary, host = scene
    package.title = "进博·理论学习包：" + "初心之地红色之城五彩进博服务在线" * 6
    station.address = "上海市松江区仓丰路1079号；枢纽先锋，逗号,分号;反斜杠\\换行"
    db.session.commit()
    book(secretary, slot)
    body = feed_document(org_feed(secretary))
    assert body.endswith(b"\r\n")
    assert b"\n" not in body.replace(b"\r\n", b"")
    lines = body.split(b"\r\n")
    assert max(len(line) for line in lines) <= 75
    assert any(line.startswith(b" ") for line in lines), "long Chinese text must be folded"
    for line in lines:
        line.decode("utf-8")  # raises if a character was split across a fold
    assert b"\\;" in body and b"\\," in body and b"\\\\" in body
    summary = str(next(iter(events(body).values()))["SUMMARY"])
    assert summary.startswith(package.title)
    location = str(next(iter(events(body).values()))["LOCATION"])
    assert location.endswith("逗号,分号;反斜杠\\换行")


def test_same_data_gives_same_bytes_and_etag(scene, frozen_now):
    station, package, slot, secretary, host = scene
    book(secretary, slot)
    feed = org_feed(secretary)
    first, first_freshness = feed_document(feed), services.freshness(feed)
    frozen_now.set(FROZEN_NOW + timedelta(hours=5))
    db.session.expire_all()
    ics.SERIALISED.items.clear()  # built again, not reused
    assert feed_document(feed) == first
    assert services.etag_of(feed_document(feed)) == services.etag_of(first)
    assert services.freshness(feed).last_modified == first_freshness.last_modified


def test_recurring_ical_events_finds_the_events_at_local_times(scene):
    station, package, slot, secretary, host = scene
    book(secretary, slot)
    cal = icalendar.Calendar.from_ical(feed_document(org_feed(secretary)))
    found = recurring_ical_events.of(cal).between(datetime(2026, 11, 30), datetime(2026, 12, 1))
    assert len(found) == 1
    start = found[0]["DTSTART"].dt
    assert start.astimezone(timezone.utc) == datetime(2026, 11, 30, 2, 0, tzinfo=timezone.utc)
    assert start.astimezone(SHANGHAI).hour == 10


# -- round trips through the booking rules -----------------------------------------------------

def _event(secretary, booking):
    return events(feed_document(org_feed(secretary)))[ics.booking_uid(booking.id)]


def test_round_trip_book_change_headcount_cancel(scene, frozen_now):
    station, package, slot, secretary, host = scene
    feed = org_feed(secretary)
    assert events(feed_document(feed)) == {}
    booking = book(secretary, slot)
    created = _event(secretary, booking)
    assert created["STATUS"] == "CONFIRMED" and "人数：12" in str(created["DESCRIPTION"])

    frozen_now.set(FROZEN_NOW + timedelta(hours=1))
    booking_services.change_headcount(secretary, booking.id, 20)
    changed = _event(secretary, booking)
    assert changed["UID"] == created["UID"]
    assert changed["SEQUENCE"] > created["SEQUENCE"]
    assert "人数：20" in str(changed["DESCRIPTION"])
    assert changed["LAST-MODIFIED"].dt > created["LAST-MODIFIED"].dt

    frozen_now.set(FROZEN_NOW + timedelta(hours=2))
    booking_services.cancel(secretary, booking.id)
    cancelled = _event(secretary, booking)
    assert cancelled["UID"] == created["UID"]
    assert cancelled["STATUS"] == "CANCELLED"
    assert cancelled["SEQUENCE"] > changed["SEQUENCE"]


def move_slot(slot, actor, delta):
    """What the host feature does when a host moves a slot (built in parallel)."""
    slot.starts_at += delta
    slot.ends_at += delta
    slot.revision += 1
    for booking in db.session.scalars(db.select(Booking).where(
            Booking.slot_id == slot.id, Booking.status.not_in(ENDED_STATUSES))):
        booking_services.record(booking, booking.status, actor, "slot_changed")
    db.session.commit()


def test_round_trip_host_moves_the_slot(scene, frozen_now):
    station, package, slot, secretary, host = scene
    booking = book(secretary, slot)
    before = _event(secretary, booking)
    host_before = events(feed_document(station_feed(host)))[ics.slot_uid(slot.id)]
    frozen_now.set(FROZEN_NOW + timedelta(hours=1))
    move_slot(slot, host, timedelta(days=1, hours=4))
    after = _event(secretary, booking)
    assert after["UID"] == before["UID"] and after["SEQUENCE"] > before["SEQUENCE"]
    assert after["DTSTART"].dt == datetime(2026, 12, 1, 14, 0, tzinfo=SHANGHAI)
    assert after["DTEND"].dt == datetime(2026, 12, 1, 16, 0, tzinfo=SHANGHAI)
    host_after = events(feed_document(station_feed(host)))[ics.slot_uid(slot.id)]
    assert host_after["SEQUENCE"] > host_before["SEQUENCE"]
    assert host_after["DTSTART"].dt == datetime(2026, 12, 1, 14, 0, tzinfo=SHANGHAI)


def test_station_feed_sequence_rises_with_roster_changes(scene, frozen_now):
    station, package, slot, secretary, host = scene
    booking = book(secretary, slot)
    first = events(feed_document(station_feed(host)))[ics.slot_uid(slot.id)]
    frozen_now.set(FROZEN_NOW + timedelta(hours=1))
    booking_services.change_headcount(secretary, booking.id, 15)
    second = events(feed_document(station_feed(host)))[ics.slot_uid(slot.id)]
    assert second["SEQUENCE"] > first["SEQUENCE"] and "15 人" in str(second["SUMMARY"])


def test_single_booking_document_has_no_feed_refresh_properties(scene):
    station, package, slot, secretary, host = scene
    booking = book(secretary, slot)
    body = ics.render("x", [lambda: ics.booking_event(booking, "http://localhost/b")], feed=False)
    cal = parse(body)
    assert "REFRESH-INTERVAL" not in cal and cal["METHOD"] == "PUBLISH"
    assert [str(e["UID"]) for e in cal.walk("VEVENT")] == [ics.booking_uid(booking.id)]
