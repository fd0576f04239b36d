"""What station hosts do to their slots, as plain functions (one transaction each).

Booking state changes go through :mod:`blueprints.booking.services`; this module changes slots
(create, edit, capacity, close/reopen, cancel, recurring series) and records a SlotEvent with the
actor for every change. Refusals raise :class:`HostError` and change nothing.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import joinedload

from blueprints.accounts.models import Organisation, User
from blueprints.booking import services as booking_services
from blueprints.booking.capacity import Availability, availability, availability_for, held_groups_expr
from blueprints.booking.models import HOLDING_STATUSES, OPEN_STATUSES, Booking, BookingStatus
from blueprints.booking.notifications import notify
from blueprints.booking.services import BookingError, NotAllowed
from blueprints.catalog.models import Package, Slot, SlotEvent, SlotStatus, Station, package_stations, station_hosts
from blueprints.core import clock
from blueprints.core.db import Busy, lock_rows, start_write_transaction
from blueprints.core.extensions import db

from . import recurrence

# Bookings a slot change or cancellation concerns.


class HostError(Exception):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def _refuse(message: str, field: str | None = None):
    db.session.rollback()
    raise HostError(message, field)


# -- reading --------------------------------------------------------------------------------

def station_ids_of(user: User) -> list[int]:
    if not user.is_host:
        return []
    return list(db.session.scalars(
        sa.select(station_hosts.c.station_id).where(station_hosts.c.user_id == user.id)
    ))


def host_stations(user: User) -> list[Station]:
    return list(db.session.scalars(
        sa.select(Station).join(station_hosts, station_hosts.c.station_id == Station.id)
        .where(station_hosts.c.user_id == user.id).order_by(Station.id)
    ))


def offered_packages(station_ids: list[int]) -> list[tuple[int, Package]]:
    """(station id, package) pairs the host may create slots for."""
    rows = db.session.execute(
        sa.select(package_stations.c.station_id, Package)
        .join(Package, Package.id == package_stations.c.package_id)
        .where(package_stations.c.station_id.in_(station_ids), Package.active)
        .order_by(package_stations.c.station_id, Package.category, Package.id)
    )
    return [(sid, package) for sid, package in rows]


def host_slot(user: User, slot_id: int) -> Slot:
    """The slot if it belongs to one of the user's stations, else NotAllowed (routes: 404)."""
    slot = db.session.scalar(
        sa.select(Slot).where(Slot.id == slot_id)
        .options(joinedload(Slot.package), joinedload(Slot.station))
    )
    if slot is None or not user.is_host or slot.station_id not in station_ids_of(user):
        raise NotAllowed()
    return slot


@dataclass
class SlotLine:
    slot: Slot
    places: Availability
    pending_people: int = 0
    pending_groups: int = 0

    @property
    def confirmed_people(self) -> int:
        return self.places.held - self.pending_people

    @property
    def fill_percent(self) -> int:
        return min(100, round(100 * self.confirmed_people / self.slot.capacity)) if self.slot.capacity else 0

    @property
    def pending_percent(self) -> int:
        return min(100 - self.fill_percent,
                   round(100 * self.pending_people / self.slot.capacity)) if self.slot.capacity else 0

    @property
    def over_group_limit(self) -> bool:
        return self.slot.max_groups is not None and self.places.groups > self.slot.max_groups


def slot_lines(slots: list[Slot]) -> list[SlotLine]:
    """Fill figures of many slots in two queries."""
    ids = [s.id for s in slots]
    places = availability_for(ids)
    pending = {}
    if ids:
        pending = {
            slot_id: (int(people), int(groups))
            for slot_id, people, groups in db.session.execute(
                sa.select(Booking.slot_id, sa.func.sum(Booking.headcount), sa.func.count(Booking.id))
                .where(Booking.slot_id.in_(ids), Booking.status == BookingStatus.PENDING)
                .group_by(Booking.slot_id)
            )
        }
    return [SlotLine(s, places[s.id], *pending.get(s.id, (0, 0))) for s in slots]


@dataclass
class Dashboard:
    today: list[SlotLine]
    upcoming: object  # pagination of slots after today
    upcoming_lines: list[SlotLine]
    pending_count: int
    empty_tomorrow: list[Slot] = field(default_factory=list)
    over_limit: list[SlotLine] = field(default_factory=list)


def _slot_query(station_ids):
    return (sa.select(Slot).where(Slot.station_id.in_(station_ids))
            .options(joinedload(Slot.package), joinedload(Slot.station))
            .order_by(Slot.starts_at, Slot.id))


def dashboard(user: User, page: int, per_page: int) -> Dashboard:
    station_ids = station_ids_of(user)
    today = clock.today()
    day_start = clock.local_datetime(today, 0)
    tomorrow_start = day_start + timedelta(days=1)
    after_tomorrow = day_start + timedelta(days=2)
    todays = db.session.scalars(
        _slot_query(station_ids).where(Slot.starts_at >= day_start, Slot.starts_at < tomorrow_start)
    ).unique().all()
    upcoming = db.paginate(
        _slot_query(station_ids).where(Slot.starts_at >= tomorrow_start),
        page=page, per_page=per_page, error_out=False,
    )
    lines = slot_lines(list(todays) + list(upcoming.items))
    today_lines, upcoming_lines = lines[:len(todays)], lines[len(todays):]
    pending_count = db.session.scalar(
        sa.select(sa.func.count(Booking.id)).join(Slot, Slot.id == Booking.slot_id)
        .where(Slot.station_id.in_(station_ids), Booking.status == BookingStatus.PENDING,
               Slot.starts_at >= clock.now())
    ) or 0
    empty_tomorrow = db.session.scalars(
        _slot_query(station_ids).where(
            Slot.starts_at >= tomorrow_start, Slot.starts_at < after_tomorrow,
            Slot.status != SlotStatus.CANCELLED, held_groups_expr() == 0)
    ).unique().all()
    over = db.session.scalars(
        _slot_query(station_ids).where(
            Slot.starts_at >= day_start, Slot.status != SlotStatus.CANCELLED,
            Slot.max_groups.is_not(None), held_groups_expr() > Slot.max_groups).limit(20)
    ).unique().all()
    return Dashboard(today_lines, upcoming, upcoming_lines, pending_count, list(empty_tomorrow),
                     slot_lines(list(over)) if over else [])


def pending_bookings(user: User, page: int, per_page: int):
    station_ids = station_ids_of(user)
    query = (
        sa.select(Booking).join(Slot, Slot.id == Booking.slot_id)
        .where(Slot.station_id.in_(station_ids), Booking.status == BookingStatus.PENDING,
               Slot.starts_at >= clock.now())
        .options(joinedload(Booking.slot).joinedload(Slot.package),
                 joinedload(Booking.slot).joinedload(Slot.station),
                 joinedload(Booking.organisation))
        .order_by(Booking.created_at, Booking.id)
    )
    pagination = db.paginate(query, page=page, per_page=per_page, error_out=False)
    return pagination, availability_for(b.slot_id for b in pagination.items)


def roster(slot: Slot) -> list[Booking]:
    return list(db.session.scalars(
        sa.select(Booking).where(Booking.slot_id == slot.id)
        .options(joinedload(Booking.organisation))
        .order_by(Booking.status, Booking.created_at, Booking.id)
    ))


@dataclass(frozen=True)
class GroupCount:
    groups: int = 0
    people: int = 0


@dataclass(frozen=True)
class RosterTotals:
    """What a roster adds up to: groups and people by where they stand."""

    confirmed: GroupCount  # confirmed, checked in or not come: the station planned for them
    pending: GroupCount  # awaiting the host's approval (their places are held)
    waitlisted: GroupCount
    came: int  # people checked in


# The states counted as confirmed on a roster: accepted groups, whether they came or not.
ROSTER_CONFIRMED = (BookingStatus.CONFIRMED, BookingStatus.ATTENDED, BookingStatus.NO_SHOW)


def roster_totals(bookings: list[Booking]) -> RosterTotals:
    """The totals above a roster, from its already-loaded bookings (no query). Cancelled and
    declined bookings count nowhere."""

    def count(statuses) -> GroupCount:
        chosen = [b for b in bookings if b.status in statuses]
        return GroupCount(len(chosen), sum(b.headcount for b in chosen))

    return RosterTotals(
        confirmed=count(ROSTER_CONFIRMED),
        pending=count((BookingStatus.PENDING,)),
        waitlisted=count((BookingStatus.WAITLISTED,)),
        came=sum(b.attended_headcount or 0 for b in bookings if b.status is BookingStatus.ATTENDED),
    )


def slot_events(slot: Slot, limit: int = 50) -> list[SlotEvent]:
    return list(db.session.scalars(
        sa.select(SlotEvent).where(SlotEvent.slot_id == slot.id)
        .options(joinedload(SlotEvent.actor)).order_by(SlotEvent.id.desc()).limit(limit)
    ))


# -- writing --------------------------------------------------------------------------------

def _event(slot: Slot, actor: User, action: str, detail: str = "") -> SlotEvent:
    event = SlotEvent(slot=slot, actor_id=actor.id, action=action, detail=detail, at=clock.now())
    db.session.add(event)
    return event


def _locked_host_slot(user: User, slot_id: int) -> Slot:
    allowed = station_ids_of(user)
    start_write_transaction()
    slot = lock_rows(sa.select(Slot).where(Slot.id == slot_id)).scalar_one_or_none()
    if slot is None or slot.station_id not in allowed:
        db.session.rollback()
        raise NotAllowed()
    return slot


def _check_slot_fields(station_id: int, package_id: int, starts_at: datetime, ends_at: datetime,
                       capacity: int | None, max_groups: int | None, allowed: list[int]) -> Package:
    if station_id not in allowed:
        raise NotAllowed()
    package = db.session.scalar(
        sa.select(Package).join(package_stations, package_stations.c.package_id == Package.id)
        .where(Package.id == package_id, package_stations.c.station_id == station_id, Package.active)
    )
    if package is None:
        raise HostError(_("This station does not offer that package."), "package")
    _check_times(starts_at, ends_at)
    if capacity is None or capacity < 1:
        raise HostError(_("The capacity must be at least 1 person."), "capacity")
    if max_groups is not None and max_groups < 1:
        raise HostError(_("The group limit must be at least 1, or empty for no limit."), "max_groups")
    return package


def _check_times(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise HostError(_("The slot must end after it starts."), "end")
    if starts_at <= clock.now():
        raise HostError(_("The slot must start in the future."), "day")


def create_slot(user: User, *, station_id: int, package_id: int, starts_at: datetime, ends_at: datetime,
                capacity: int, max_groups: int | None = None, note: str = "") -> Slot:
    allowed = station_ids_of(user)
    _check_slot_fields(station_id, package_id, starts_at, ends_at, capacity, max_groups, allowed)
    slot = Slot(package_id=package_id, station_id=station_id, starts_at=starts_at, ends_at=ends_at,
                capacity=capacity, max_groups=max_groups, note=note.strip()[:300],
                status=SlotStatus.OPEN, revision=0)
    db.session.add(slot)
    _event(slot, user, "created")
    db.session.commit()
    return slot


def create_series(user: User, *, station_id: int, package_id: int, rule: recurrence.Rule,
                  capacity: int, max_groups: int | None = None, note: str = "") -> list[Slot]:
    """Create one slot per kept occurrence of ``rule``; they share a new series id."""
    allowed = station_ids_of(user)
    try:
        planned = recurrence.kept(recurrence.occurrences(rule))
    except recurrence.RuleError as exc:
        raise HostError(exc.message, exc.field) from None
    planned = [o for o in planned if o.starts_at > clock.now()]
    if not planned:
        raise HostError(_("This rule gives no future dates."), "first_day")
    if len(planned) > recurrence.MAX_OCCURRENCES:
        raise HostError(_("A series can hold at most %(max)s slots.", max=recurrence.MAX_OCCURRENCES), "last_day")
    first = planned[0]
    _check_slot_fields(station_id, package_id, first.starts_at, first.ends_at, capacity, max_groups, allowed)
    series_id = uuid.uuid4().hex
    slots = []
    for occurrence in planned:
        slot = Slot(package_id=package_id, station_id=station_id, starts_at=occurrence.starts_at,
                    ends_at=occurrence.ends_at, capacity=capacity, max_groups=max_groups,
                    note=note.strip()[:300], status=SlotStatus.OPEN, series_id=series_id, revision=0)
        db.session.add(slot)
        _event(slot, user, "created", detail=f"series {series_id}")
        slots.append(slot)
    db.session.commit()
    return slots


def _active_bookings(slot: Slot) -> list[Booking]:
    return list(db.session.scalars(
        sa.select(Booking).where(Booking.slot_id == slot.id, Booking.status.in_(OPEN_STATUSES))
        .order_by(Booking.id)
    ))


def _changeable_host_slot(user: User, slot_id: int) -> Slot:
    """The host's slot, locked, for a change of its time, places or status (``Slot.is_changeable``)."""
    slot = _locked_host_slot(user, slot_id)
    if not slot.is_changeable:
        _refuse(_("This slot has been cancelled and can no longer be changed."))
    return slot


def edit_slot(user: User, slot_id: int, *, starts_at: datetime, ends_at: datetime, capacity: int,
              max_groups: int | None, note: str) -> Slot:
    """Change time, capacity, group limit and note. A new time bumps the slot's revision and every
    active booking's revision, and tells the booked branches."""
    slot = _changeable_host_slot(user, slot_id)
    moved = (starts_at, ends_at) != (slot.starts_at, slot.ends_at)
    if moved:
        try:
            _check_times(starts_at, ends_at)
        except HostError as exc:
            _refuse(exc.message, exc.field)
    _check_capacity(slot, capacity, max_groups)
    changes = []
    if moved:
        changes.append(f"time {slot.starts_at.isoformat()}–{slot.ends_at.isoformat()} → "
                       f"{starts_at.isoformat()}–{ends_at.isoformat()}")
        slot.starts_at, slot.ends_at = starts_at, ends_at
        slot.revision += 1
    grew = capacity > slot.capacity or (slot.max_groups is not None and (max_groups is None or max_groups > slot.max_groups))
    if capacity != slot.capacity:
        changes.append(f"capacity {slot.capacity} → {capacity}")
        slot.capacity = capacity
    if max_groups != slot.max_groups:
        changes.append(f"max_groups {slot.max_groups} → {max_groups}")
        slot.max_groups = max_groups
    note = note.strip()[:300]
    if note != slot.note:
        changes.append("note")
        slot.note = note
    if not changes:
        db.session.rollback()
        return slot
    _event(slot, user, "edited", detail="; ".join(changes))
    if moved:
        for booking in _active_bookings(slot):
            booking_services.record(booking, booking.status, user, "slot_changed", detail=changes[0])
            db.session.flush()
            notify("slot_changed", booking)
    db.session.flush()
    if grew:
        booking_services.promote_waitlist(slot)
    db.session.commit()
    return slot


def _check_capacity(slot: Slot, capacity: int | None, max_groups: int | None) -> Availability:
    places = availability(slot.id)
    if capacity is None or capacity < 1:
        _refuse(_("The capacity must be at least 1 person."), "capacity")
    if capacity < places.held:
        _refuse(_("The capacity cannot be lower than the %(held)s people already booked.", held=places.held),
                "capacity")
    if max_groups is not None and max_groups < max(places.groups, 1):
        _refuse(_("The group limit cannot be lower than the %(groups)s groups already booked.",
                  groups=places.groups), "max_groups")
    return places


def change_capacity(user: User, slot_id: int, capacity: int | None) -> Slot:
    slot = _changeable_host_slot(user, slot_id)
    _check_capacity(slot, capacity, slot.max_groups)
    if capacity == slot.capacity:
        db.session.rollback()
        return slot
    old = slot.capacity
    slot.capacity = capacity
    _event(slot, user, "capacity_changed", detail=f"{old} → {capacity}")
    db.session.flush()
    if capacity > old:
        booking_services.promote_waitlist(slot)
    db.session.commit()
    return slot


def set_open(user: User, slot_id: int, open_: bool) -> Slot:
    """Close booking (existing bookings stay) or reopen it."""
    slot = _changeable_host_slot(user, slot_id)
    target = SlotStatus.OPEN if open_ else SlotStatus.CLOSED
    if slot.status is target:
        db.session.rollback()
        return slot
    slot.status = target
    slot.revision += 1
    _event(slot, user, "reopened" if open_ else "closed")
    if open_:
        # Places freed while booking was closed go to the waitlist before any newcomer.
        db.session.flush()
        booking_services.promote_waitlist(slot)
    db.session.commit()
    return slot


def cancel_slot(user: User, slot_id: int, reason: str) -> list[Booking]:
    """Cancel the slot: every active booking is cancelled and its branch told why."""
    reason = (reason or "").strip()
    if not reason:
        raise HostError(_("Please give the branches a reason."), "reason")
    slot = _locked_host_slot(user, slot_id)
    if slot.status is SlotStatus.CANCELLED:
        _refuse(_("This slot has already been cancelled."))
    if slot.ends_at <= clock.now():
        _refuse(_("This slot is over and can no longer be cancelled."))
    slot.status = SlotStatus.CANCELLED
    slot.cancel_reason = reason[:300]
    slot.revision += 1
    cancelled = _active_bookings(slot)
    for booking in cancelled:
        booking_services.record(booking, BookingStatus.CANCELLED, user, "slot_cancelled", reason=reason[:500])
        db.session.flush()
        notify("slot_cancelled", booking, reason=reason)
    _event(slot, user, "cancelled", detail=reason[:300])
    db.session.commit()
    return cancelled


def mark_no_shows(user: User, slot_id: int) -> int:
    """The host settles an ended slot: groups nobody checked in become no-shows."""
    slot = host_slot(user, slot_id)
    if clock.now() < slot.ends_at:
        raise HostError(_("No-shows can be recorded once the slot is over."))
    return booking_services.mark_no_shows(slot.id, user)


def checkin_bookings(slot: Slot) -> list[Booking]:
    return list(db.session.scalars(
        sa.select(Booking).where(Booking.slot_id == slot.id, Booking.status.in_(
            (BookingStatus.CONFIRMED, BookingStatus.ATTENDED, BookingStatus.NO_SHOW)))
        .options(joinedload(Booking.organisation)).order_by(Booking.id)
    ))


# -- bulk approvals ---------------------------------------------------------------------------

APPROVE, DECLINE = "approve", "decline"
BULK_ACTIONS = (APPROVE, DECLINE)
MAX_BULK = 200  # bookings decided in one request: each takes its slot's lock in turn


@dataclass(frozen=True)
class BulkItem:
    """One booking of a bulk decision, as plain values (the booking's own transaction is over).
    ``organisation`` is None for an id that names no booking of the host's stations."""

    booking_id: int
    organisation: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    message: str = ""

    @property
    def found(self) -> bool:
        return self.organisation is not None


@dataclass
class BulkResult:
    action: str
    done: list[BulkItem] = field(default_factory=list)
    refused: list[BulkItem] = field(default_factory=list)


def bulk_problem(booking_ids: list[int], action: str, reason: str) -> HostError | None:
    """What is wrong with a bulk decision's input itself, before any booking is read."""
    if action not in BULK_ACTIONS:
        return HostError(_("Please choose whether to approve or to decline the selected bookings."), "action")
    if not booking_ids:
        return HostError(_("Please select at least one booking."), "booking_ids")
    if len(set(booking_ids)) > MAX_BULK:
        return HostError(_("Please select at most %(max)s bookings at a time.", max=MAX_BULK), "booking_ids")
    if action == DECLINE and not (reason or "").strip():
        return HostError(_("Please give the branch a reason."), "reason")
    return None


def decide_many(user: User, booking_ids: list[int], action: str, reason: str = "") -> BulkResult:
    """Approve or decline several bookings of the host's stations, each by the single-booking
    rule (``booking.services.approve`` / ``decline``: its slot's lock, its own transaction, its
    notification), oldest request first, so a refusal leaves the others decided and itself
    pending. Ids that name no booking of the host's stations are refused as not found, without
    a word about them; when none does, NotAllowed (routes: 404) and nothing is touched."""
    problem = bulk_problem(booking_ids, action, reason)
    if problem:
        raise problem
    wanted = list(dict.fromkeys(booking_ids))
    rows = db.session.execute(
        sa.select(Booking.id, Organisation.name, Slot.starts_at, Slot.ends_at)
        .join(Slot, Slot.id == Booking.slot_id).join(Organisation, Organisation.id == Booking.organisation_id)
        .where(Booking.id.in_(wanted), Slot.station_id.in_(station_ids_of(user)))
        .order_by(Booking.created_at, Booking.id)
    ).all()
    db.session.rollback()  # each booking below is decided in a transaction of its own
    if not rows:
        raise NotAllowed()
    result = BulkResult(action)
    for booking_id, organisation, starts_at, ends_at in rows:
        item = BulkItem(booking_id, organisation, starts_at, ends_at)
        try:
            if action == APPROVE:
                booking_services.approve(user, booking_id)
            else:
                booking_services.decline(user, booking_id, reason)
        except BookingError as exc:
            result.refused.append(_with_message(item, exc.message))
        except NotAllowed:  # no longer the host's station since the read above
            result.refused.append(BulkItem(booking_id, message=_("Booking not found.")))
        except Busy:
            db.session.rollback()
            result.refused.append(_with_message(item, _(
                "The server is busy with other bookings of this slot. Please try again.")))
        else:
            result.done.append(item)
    found = {row[0] for row in rows}
    result.refused += [BulkItem(booking_id, message=_("Booking not found."))
                       for booking_id in wanted if booking_id not in found]
    return result


def _with_message(item: BulkItem, message: str) -> BulkItem:
    return BulkItem(item.booking_id, item.organisation, item.starts_at, item.ends_at, message)


__all__ = [
    "HostError", "NotAllowed", "HOLDING_STATUSES", "host_slot", "dashboard", "pending_bookings",
    "create_slot", "create_series", "edit_slot", "change_capacity", "set_open", "cancel_slot",
    "mark_no_shows", "roster", "decide_many", "bulk_problem", "BulkResult", "BulkItem", "MAX_BULK",
]
