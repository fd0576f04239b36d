"""Reminders before a themed Party day: to the booking organisation (inbox entry 提醒…, and mail)
and to the hosts of each slot with bookings (its roster summary), ``REMINDER_HOURS`` before it.

The jobs consumer's minute sweep (``queue_due_reminders``) enqueues a job per confirmed booking and
per slot whose start is within ``REMINDER_HOURS``; a job's key names its booking or slot, so a
reminder is never queued twice. When it runs, a reminder checks again: nothing for a booking that
was cancelled, declined or moved to another slot since, nor for a slot that no longer has bookings.
"""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from blueprints.accounts.models import User
from blueprints.catalog.models import Slot, SlotStatus, station_hosts
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.jobs import queue as jobs
from blueprints.jobs.consumer import every_minute
from blueprints.jobs.models import Job

from .models import Booking, BookingStatus
from .notifications import deliver, notify

BOOKING_KIND = "booking_reminder"
SLOT_KIND = "slot_reminder"
BATCH = 500


def reminder_window():
    hours = current_app.config.get("REMINDER_HOURS", 24)
    now = clock.now()
    return now, now + timedelta(hours=hours)


def booking_key(booking_id: int, slot_id: int) -> str:
    """Per booking and slot: a booking moved to another slot is reminded of that one."""
    return f"reminder:booking:{booking_id}:slot:{slot_id}"


def slot_key(slot_id: int) -> str:
    return f"reminder:slot:{slot_id}"


def _not_queued(*parts):
    """No job yet whose key is ``parts`` joined (strings and id columns, as ``booking_key`` and
    ``slot_key`` write it): an index lookup on the unique key."""
    key = None
    for part in parts:
        piece = sa.literal(part) if isinstance(part, str) else sa.cast(part, sa.String)
        key = piece if key is None else key + piece
    return ~sa.exists().where(Job.key == key)


@every_minute("reminders")
def queue_due_reminders() -> int:
    """Enqueue the reminders now due (each once). Returns how many were enqueued."""
    now, until = reminder_window()
    starting = sa.and_(Slot.starts_at > now, Slot.starts_at <= until, Slot.status != SlotStatus.CANCELLED)
    bookings = db.session.execute(
        sa.select(Booking.id, Booking.slot_id).join(Slot, Slot.id == Booking.slot_id)
        .where(starting, Booking.status == BookingStatus.CONFIRMED,
               _not_queued("reminder:booking:", Booking.id, ":slot:", Booking.slot_id))
        .order_by(Booking.id).limit(BATCH)).all()
    slots = db.session.scalars(
        sa.select(Slot.id).where(starting, _not_queued("reminder:slot:", Slot.id), sa.exists().where(
            Booking.slot_id == Slot.id, Booking.status.in_((BookingStatus.CONFIRMED, BookingStatus.PENDING))))
        .order_by(Slot.id).limit(BATCH)).all()
    queued = 0
    for booking_id, slot_id in bookings:
        queued += jobs.enqueue(BOOKING_KIND, booking_key(booking_id, slot_id), {"booking_id": booking_id, "slot_id": slot_id}) is not None
    for slot_id in slots:
        queued += jobs.enqueue(SLOT_KIND, slot_key(slot_id), {"slot_id": slot_id}) is not None
    db.session.commit()
    return queued


@jobs.handler(BOOKING_KIND)
def remind_booking(payload: dict) -> None:
    booking = db.session.get(Booking, payload["booking_id"])
    if booking is None or booking.status is not BookingStatus.CONFIRMED or booking.slot_id != payload["slot_id"]:
        return  # cancelled, declined or moved since: no reminder of a session the group will not attend
    notify("reminder", booking, link=_link("booking.confirmation", booking_id=booking.id),
           contact=f"{booking.contact_name} {booking.contact_phone}", address=booking.slot.station.address or "")


@jobs.handler(SLOT_KIND)
def remind_hosts(payload: dict) -> None:
    slot = db.session.get(Slot, payload["slot_id"])
    if slot is None or slot.status is SlotStatus.CANCELLED:
        return
    groups, people = db.session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(Booking.headcount), 0))
        .where(Booking.slot_id == slot.id, Booking.status.in_((BookingStatus.CONFIRMED, BookingStatus.PENDING)))
    ).one()
    if not groups:
        return
    hosts = list(db.session.scalars(
        sa.select(User).join(station_hosts, station_hosts.c.user_id == User.id)
        .where(station_hosts.c.station_id == slot.station_id, User.active)))
    params = booking_params_of_slot(slot, slot_id=slot.id, groups=groups, people=people,
                                    link=_link("host.roster", slot_id=slot.id))
    deliver(hosts, "slot_reminder", params)


def booking_params_of_slot(slot: Slot, **extra) -> dict:
    from blueprints.core.i18n import in_default_language
    from blueprints.core.templating import time_range

    with in_default_language():
        when = time_range(slot.starts_at, slot.ends_at)
    return {"package": slot.package.title, "station": slot.station.name, "when": when, **extra}


def _link(endpoint: str, **values) -> str:
    """An address for a mail written outside any request: ``PUBLIC_URL`` + the path (the path
    alone without it, as in demo mode)."""
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return (current_app.config.get("PUBLIC_URL") or "") + path


