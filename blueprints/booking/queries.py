"""Read-side queries for the booking pages."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import joinedload, selectinload

from blueprints.catalog.models import Package, Slot, SlotStatus
from blueprints.core import clock
from blueprints.core.db import built_once
from blueprints.core.extensions import db

from .models import Booking, Notification


def package_or_none(package_id: int) -> Package | None:
    return db.session.scalar(
        sa.select(Package)
        .where(Package.id == package_id, Package.active)
        .options(selectinload(Package.stations), joinedload(Package.campaign))
    )


def _upcoming_of_package(package_id: int):
    return (Slot.package_id == package_id, Slot.starts_at > clock.now(), Slot.status != SlotStatus.CANCELLED)


def next_start_of_package(package_id: int):
    """When the package's next slot starts (and every later page of its list shifts)."""
    return db.session.scalar(sa.select(sa.func.min(Slot.starts_at)).where(*_upcoming_of_package(package_id)))


def upcoming_slots_of_package(package_id: int, page: int, per_page: int):
    query = (
        sa.select(Slot)
        .where(*_upcoming_of_package(package_id))
        .order_by(Slot.starts_at, Slot.id)
        .options(joinedload(Slot.station))
    )
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


@built_once
def _slot_statement():
    return (
        sa.select(Slot)
        .where(Slot.id == sa.bindparam("slot_id"))
        .options(joinedload(Slot.package).joinedload(Package.campaign), joinedload(Slot.station))
    )


def slot_or_none(slot_id: int) -> Slot | None:
    return db.session.scalar(_slot_statement(), {"slot_id": slot_id})


def bookings_of_organisation(organisation_id: int, *, upcoming: bool, page: int, per_page: int):
    now = clock.now()
    query = (
        sa.select(Booking)
        .join(Slot, Slot.id == Booking.slot_id)
        .where(Booking.organisation_id == organisation_id)
        .options(joinedload(Booking.slot).joinedload(Slot.package), joinedload(Booking.slot).joinedload(Slot.station))
    )
    if upcoming:
        query = query.where(Slot.ends_at >= now).order_by(Slot.starts_at, Booking.id)
    else:
        query = query.where(Slot.ends_at < now).order_by(Slot.starts_at.desc(), Booking.id.desc())
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


def unread_count(user_id: int) -> int:
    return db.session.scalar(
        sa.select(sa.func.count(Notification.id)).where(
            Notification.user_id == user_id, Notification.read_at.is_(None)
        )
    ) or 0


def notifications_of(user_id: int, page: int, per_page: int):
    query = (
        sa.select(Notification)
        .where(Notification.user_id == user_id)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
    )
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


def mark_all_read(user_id: int) -> int:
    result = db.session.execute(
        sa.update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=clock.now())
    )
    db.session.commit()
    return result.rowcount
