"""iCalendar documents built with the ``icalendar`` library: pure functions from objects to bytes.

Everything in the output is derived from the data (no "now"), so identical data gives identical
bytes. Times are written with TZID=Asia/Shanghai and an embedded VTIMEZONE; DTSTAMP, CREATED and
LAST-MODIFIED in UTC.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Callable, Iterable

from flask import current_app
from flask_babel import gettext as _
from icalendar import Calendar, Event, Timezone

from blueprints.booking.models import Booking, BookingStatus
from blueprints.catalog.models import Slot
from blueprints.core.clock import LOCAL_TZ
from blueprints.core.i18n import in_default_language

PRODID = "-//Partyday//Themed Party-day service menu//ZH"
TZID = "Asia/Shanghai"
DEFAULT_UID_DOMAIN = "partyday.local"

STATUS = {
    BookingStatus.PENDING: "TENTATIVE",
    BookingStatus.CONFIRMED: "CONFIRMED",
    BookingStatus.ATTENDED: "CONFIRMED",
    BookingStatus.NO_SHOW: "CONFIRMED",
    BookingStatus.CANCELLED: "CANCELLED",
    BookingStatus.DECLINED: "CANCELLED",
    BookingStatus.WAITLISTED: "TENTATIVE",
}

Link = Callable[[Booking | Slot], str]


def uid_domain() -> str:
    return current_app.config.get("CALENDAR_UID_DOMAIN") or DEFAULT_UID_DOMAIN


def booking_uid(booking_id: int) -> str:
    return f"booking-{booking_id}@{uid_domain()}"


def slot_uid(slot_id: int) -> str:
    return f"slot-{slot_id}@{uid_domain()}"


def public_slot_uid(slot_id: int) -> str:
    return f"open-slot-{slot_id}@{uid_domain()}"


@lru_cache(maxsize=1)
def _vtimezone_ical() -> bytes:
    # Shanghai has had no daylight saving since 1991; transitions from 1980 keep it short.
    return Timezone.from_tzid(TZID, first_date=date(1980, 1, 1), last_date=date(2040, 1, 1)).to_ical()


def _vtimezone() -> Timezone:
    return Timezone.from_ical(_vtimezone_ical())


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def _local(moment: datetime) -> datetime:
    return moment.astimezone(LOCAL_TZ).replace(microsecond=0)


def _latest(*moments: datetime | None) -> datetime:
    return max(m for m in moments if m is not None)


def new_calendar(name: str, *, feed: bool) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("name", name)
    cal.add("x-wr-timezone", TZID)
    if feed:
        cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
        cal.add("x-published-ttl", "PT1H")
    cal.add_component(_vtimezone())
    return cal


def _times(event: Event, slot: Slot, created: datetime, modified: datetime) -> None:
    event.add("dtstart", _local(slot.starts_at))
    event.add("dtend", _local(slot.ends_at))
    event.add("dtstamp", _utc(modified))
    event.add("created", _utc(created))
    event.add("last-modified", _utc(modified))


def _location(slot: Slot) -> str:
    station = slot.station
    return f"{station.name}，{station.address}" if station.address else station.name


def _lines(*pairs: tuple[str, object]) -> str:
    return "\n".join(f"{label}：{value}" for label, value in pairs if value not in (None, ""))


def booking_event(booking: Booking, link: str) -> Event:
    """``booking``: a Booking, or anything with the same attributes (``services.EventBooking``)."""
    slot, station, package = booking.slot, booking.slot.station, booking.slot.package
    event = Event()
    event.add("uid", booking_uid(booking.id))
    event.add("sequence", booking_sequence(booking))
    status = STATUS[booking.status]
    event.add("status", status)
    prefix = ""
    if status == "CANCELLED":
        prefix = _("[Cancelled] ")
    elif status == "TENTATIVE":
        prefix = _("[Awaiting approval] ")
    event.add("summary", f"{prefix}{package.title} · {station.name}")
    event.add("location", _location(slot))
    event.add("description", _lines(
        (_("Package"), f"{package.title}（{package.category.label}）"),
        (_("Organisation"), booking.organisation.name),
        (_("Status"), booking.status.label),
        (_("Headcount"), booking.headcount),
        (_("Contact"), f"{booking.contact_name} {booking.contact_phone}"),
        (_("Station phone"), station.phone),
        (_("Details"), link),
    ))
    event.add("url", link)
    event.add("transp", "TRANSPARENT" if status == "CANCELLED" else "OPAQUE")
    event.add("categories", [str(package.category.label)])
    _times(event, slot, booking.created_at,
           _latest(booking.updated_at, slot.updated_at, station.updated_at, package.updated_at,
                   booking.organisation.updated_at))
    return event


def booking_sequence(booking: Booking) -> int:
    """Raised by every change of the booking and of its slot's time or status — also for a
    booking cancelled before its slot moved, whose own revision no longer changes."""
    return booking.revision + booking.slot.revision


def host_slot_event(slot: Slot, bookings: list[Booking], sequence: int, link: str) -> Event:
    station, package = slot.station, slot.package
    people = sum(b.headcount for b in bookings)
    event = Event()
    event.add("uid", slot_uid(slot.id))
    event.add("sequence", sequence)
    cancelled = slot.status.value == "cancelled"
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("summary", _("%(package)s · %(groups)s groups, %(people)s people",
                           package=package.title, groups=len(bookings), people=people))
    event.add("location", _location(slot))
    roster = "\n".join(
        "· " + _("%(organisation)s: %(people)s people, contact %(contact)s %(phone)s",
                 organisation=b.organisation.name, people=b.headcount, contact=b.contact_name,
                 phone=b.contact_phone)
        + (f"（{b.status.label}）" if b.status is not BookingStatus.CONFIRMED else "")
        for b in bookings
    )
    event.add("description", _lines(
        (_("Package"), f"{package.title}（{package.category.label}）"),
        (_("Booked"), _("%(people)s of %(capacity)s places", people=people, capacity=slot.capacity)),
        (_("Roster"), "\n" + roster if roster else ""),
        (_("Station phone"), station.phone),
        (_("Details"), link),
    ))
    event.add("url", link)
    event.add("categories", [str(package.category.label)])
    created = min([slot.created_at] + [b.created_at for b in bookings])
    modified = _latest(slot.updated_at, station.updated_at, package.updated_at,
                       *(b.updated_at for b in bookings), *(b.organisation.updated_at for b in bookings))
    _times(event, slot, created, modified)
    return event


def public_slot_event(slot: Slot, remaining: int, link: str, places_changed: datetime | None = None) -> Event:
    """``places_changed``: when a booking of the slot last changed (the places left with it)."""
    station, package = slot.station, slot.package
    event = Event()
    event.add("uid", public_slot_uid(slot.id))
    event.add("sequence", slot.revision)
    event.add("status", "CONFIRMED")
    full = remaining <= 0
    event.add("summary", (_("[Full] ") if full else "") + f"{package.title} · {station.name}")
    event.add("location", _location(slot))
    event.add("description", _lines(
        (_("Package"), f"{package.title}（{package.category.label}）"),
        (_("Places left"), _("%(remaining)s of %(capacity)s", remaining=max(remaining, 0), capacity=slot.capacity)),
        (_("About"), package.summary),
        (_("Station phone"), station.phone),
        (_("Book"), link),
    ))
    event.add("url", link)
    event.add("transp", "TRANSPARENT")
    event.add("categories", [str(package.category.label)])
    _times(event, slot, slot.created_at,
           _latest(slot.updated_at, station.updated_at, package.updated_at, places_changed))
    return event


def render(name: str, events: Iterable[Callable[[], Event]], *, feed: bool = True) -> bytes:
    """The calendar as bytes (CRLF, folded at 75 octets by icalendar); texts always in Chinese."""
    with in_default_language():
        cal = new_calendar(name, feed=feed)
        for make in events:
            cal.add_component(make())
        return cal.to_ical()


END = b"END:VCALENDAR\r\n"


class SerialisedEvents:
    """VEVENT bytes kept per process by what they are built from (row ids, versions and times,
    link, places): after a change only the events whose rows changed are built again."""

    def __init__(self, max_items: int = 50_000):
        import threading
        from collections import OrderedDict

        self.items: "OrderedDict[tuple, bytes]" = OrderedDict()
        self.max_items = max_items
        self.lock = threading.Lock()  # threaded workers (GUNICORN_THREADS) share it

    def __contains__(self, key: tuple) -> bool:
        return key in self.items

    def get(self, key: tuple, make: Callable[[], Event]) -> bytes:
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
                return found
        found = make().to_ical()
        with self.lock:
            self.items[key] = found
            if len(self.items) > self.max_items:
                self.items.popitem(last=False)
        return found


SERIALISED = SerialisedEvents()


def _station_inputs(station) -> tuple:
    return (station.id, station.name, station.address, station.phone, station.updated_at)


def _package_inputs(package) -> tuple:
    return (package.id, package.title, package.category.value, package.summary, package.updated_at)


def _slot_inputs(slot: Slot) -> tuple:
    return (slot.id, slot.starts_at, slot.ends_at, slot.status.value, slot.capacity, slot.revision,
            slot.created_at, slot.updated_at, _station_inputs(slot.station), _package_inputs(slot.package))


def _booking_inputs(booking: Booking) -> tuple:  # for the host feed's roster
    return (booking.id, booking.status.value, booking.headcount, booking.contact_name, booking.contact_phone,
            booking.revision, booking.created_at, booking.updated_at, booking.organisation.name,
            booking.organisation.updated_at)


def booking_event_key(inputs: tuple, link: str) -> tuple:
    """``inputs``: a row of everything :func:`booking_event` reads (``services.organisation_event_inputs``):
    equal keys give equal bytes."""
    return ("booking", link, tuple(inputs))


def host_slot_event_key(slot: Slot, bookings: list[Booking], sequence: int, link: str) -> tuple:
    return ("host", link, sequence, _slot_inputs(slot), tuple(_booking_inputs(b) for b in bookings))


def public_slot_event_key(slot: Slot, remaining: int, link: str, places_changed: datetime | None) -> tuple:
    return ("public", link, remaining, places_changed, _slot_inputs(slot))


def render_keyed(name: str, events: Iterable[tuple[tuple, Callable[[], Event]]]) -> bytes:
    """The same bytes as :func:`render` for a feed, each event reused by its key when unchanged."""
    with in_default_language():
        domain = uid_domain()
        parts = [_feed_head(name, domain)]
        parts += [SERIALISED.get((domain, *key), make) for key, make in events]
        parts.append(END)
        return b"".join(parts)


@lru_cache(maxsize=2048)
def _feed_head(name: str, domain: str) -> bytes:
    """The calendar's properties and time zone, before its events (the same for every build)."""
    head = new_calendar(name, feed=True).to_ical()
    assert head.endswith(END)
    return head[: -len(END)]
