"""How many places a slot has left, always counted from the bookings themselves."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import sqlalchemy as sa

from blueprints.catalog.models import Package, Slot
from blueprints.core.db import built_once
from blueprints.core.extensions import db

from .models import HOLDING_STATUSES, Booking


def held_headcount_expr(slot_id_column=Slot.id):
    """Correlated subquery: people held on the slot (uses ix_bookings_slot_id_status)."""
    return (
        sa.select(sa.func.coalesce(sa.func.sum(Booking.headcount), 0))
        .where(Booking.slot_id == slot_id_column, Booking.status.in_(HOLDING_STATUSES))
        .scalar_subquery()
    )


def held_groups_expr(slot_id_column=Slot.id):
    return (
        sa.select(sa.func.count(Booking.id))
        .where(Booking.slot_id == slot_id_column, Booking.status.in_(HOLDING_STATUSES))
        .scalar_subquery()
    )


def remaining_places_expr():
    """Places left as a SQL expression over ``slots`` (0 when the group limit is reached)."""
    people_left = Slot.capacity - held_headcount_expr()
    return sa.case(
        (sa.and_(Slot.max_groups.is_not(None), held_groups_expr() >= Slot.max_groups), 0),
        else_=people_left,
    )


def fits_a_group(remaining: int, min_group: int) -> bool:
    """The rule: a slot takes a booking only while its places left hold the package's smallest
    group. With fewer (say 1 place left for groups of 5) it reads and behaves as full; the SQL
    twin is :func:`fits_a_group_expr`."""
    return remaining > 0 and remaining >= min_group


def fits_a_group_expr(min_group_column=Package.min_group_size):
    """:func:`fits_a_group` as a SQL condition over ``slots`` (and the package's smallest group):
    the menu's "only with places left" filter."""
    remaining = remaining_places_expr()
    return sa.and_(remaining > 0, remaining >= min_group_column)


@dataclass(frozen=True)
class Availability:
    capacity: int
    held: int
    groups: int
    max_groups: int | None

    @property
    def groups_full(self) -> bool:
        return self.max_groups is not None and self.groups >= self.max_groups

    @property
    def remaining(self) -> int:
        """Places a new booking could take right now."""
        if self.groups_full:
            return 0
        return max(self.capacity - self.held, 0)

    def fits_group(self, min_group: int) -> bool:
        """Whether a group of the package's smallest size still fits (see :func:`fits_a_group`)."""
        return fits_a_group(self.remaining, min_group)


@built_once
def _availability_statement():
    return (
        sa.select(
            Slot.id,
            Slot.capacity,
            Slot.max_groups,
            sa.func.coalesce(sa.func.sum(Booking.headcount), 0),
            sa.func.count(Booking.id),
        )
        .outerjoin(
            Booking,
            sa.and_(Booking.slot_id == Slot.id, Booking.status.in_(HOLDING_STATUSES)),
        )
        .where(Slot.id.in_(sa.bindparam("slot_ids", expanding=True)))
        .group_by(Slot.id, Slot.capacity, Slot.max_groups)
    )


def availability_for(slot_ids: Iterable[int]) -> dict[int, Availability]:
    """Availability of many slots in one query."""
    ids = list(set(slot_ids))
    if not ids:
        return {}
    rows = db.session.execute(_availability_statement(), {"slot_ids": ids})
    return {
        slot_id: Availability(capacity, int(held), int(groups), max_groups)
        for slot_id, capacity, max_groups, held, groups in rows
    }


def availability(slot_id: int) -> Availability:
    return availability_for([slot_id])[slot_id]
