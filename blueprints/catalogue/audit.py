"""The audit trail (/admin/audit): booking events and slot events merged in time order.

One UNION ALL query picks the page's (kind, id) pairs, newest first, with every filter applied
inside each half so that the indexes on ``at``, ``action``, ``to_status``, ``actor_id``,
``booking_id`` and ``slot_id`` serve them; two more queries load the page's events with what
they show. Pages are fetched with one extra row to know whether a next page exists, so no
count over the whole history is ever run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from blueprints.accounts.models import Organisation, User
from blueprints.booking.models import BOOKING_EVENT_ACTIONS, Booking, BookingEvent, BookingStatus, booking_action_label
from blueprints.catalog.models import SLOT_EVENT_ACTIONS, Slot, SlotEvent, slot_action_label
from blueprints.core import clock
from blueprints.core.db import contains
from blueprints.core.extensions import db

MAX_PAGE = 500  # deeper than this, narrow the filters instead

# One mapping per kind of event, kept with the models and shared by every page that shows events.
BOOKING_ACTIONS = BOOKING_EVENT_ACTIONS
SLOT_ACTIONS = SLOT_EVENT_ACTIONS


def action_label(kind: str, action: str) -> str:
    return booking_action_label(action) if kind == "booking" else slot_action_label(action)


@dataclass(frozen=True)
class AuditFilters:
    who: str = ""
    what: str = ""  # "booking:", "slot:", "booking:<action>" or "slot:<action>"
    status: str = ""  # a BookingStatus value: the status a booking event led to
    date_from: date | None = None
    date_to: date | None = None
    station_id: int | None = None
    organisation: str = ""

    @property
    def kind(self) -> str:
        return self.what.split(":", 1)[0] if ":" in self.what else ""

    @property
    def action(self) -> str:
        return self.what.split(":", 1)[1] if ":" in self.what else ""

    @property
    def wants_booking_events(self) -> bool:
        return self.kind in ("", "booking")

    @property
    def wants_slot_events(self) -> bool:
        # Slot events have no organisation and no booking status.
        return self.kind in ("", "slot") and not self.status and not self.organisation.strip()


@dataclass
class AuditEntry:
    kind: str
    id: int
    at: datetime
    actor: User | None
    action: str
    label: str
    slot: Slot
    booking: Booking | None = None
    from_status: BookingStatus | None = None
    to_status: BookingStatus | None = None
    text: str = ""


@dataclass
class AuditPage:
    entries: list[AuditEntry] = field(default_factory=list)
    page: int = 1
    has_prev: bool = False
    has_next: bool = False


def _actor_ids(who: str):
    who = who.strip()[:200]  # SQLite refuses LIKE patterns over 50 kB
    return sa.select(User.id).where(sa.or_(User.username == who, contains(who, User.display_name)))


def _booking_half(f: AuditFilters, lower, upper):
    query = sa.select(sa.literal("booking", sa.String(8)).label("kind"), BookingEvent.id.label("id"),
                      BookingEvent.at.label("at"))
    if f.station_id or f.organisation.strip():
        query = query.join(Booking, Booking.id == BookingEvent.booking_id)
    if f.station_id:
        query = query.join(Slot, Slot.id == Booking.slot_id).where(Slot.station_id == f.station_id)
    if f.organisation.strip():
        query = query.where(Booking.organisation_id.in_(
            sa.select(Organisation.id).where(contains(f.organisation[:200], Organisation.name))))
    if f.action:
        query = query.where(BookingEvent.action == f.action)
    if f.status:
        query = query.where(BookingEvent.to_status == BookingStatus(f.status))
    if f.who.strip():
        query = query.where(BookingEvent.actor_id.in_(_actor_ids(f.who)))
    if lower is not None:
        query = query.where(BookingEvent.at >= lower)
    if upper is not None:
        query = query.where(BookingEvent.at < upper)
    return query


def _slot_half(f: AuditFilters, lower, upper):
    query = sa.select(sa.literal("slot", sa.String(8)).label("kind"), SlotEvent.id.label("id"),
                      SlotEvent.at.label("at"))
    if f.station_id:
        query = query.join(Slot, Slot.id == SlotEvent.slot_id).where(Slot.station_id == f.station_id)
    if f.action:
        query = query.where(SlotEvent.action == f.action)
    if f.who.strip():
        query = query.where(SlotEvent.actor_id.in_(_actor_ids(f.who)))
    if lower is not None:
        query = query.where(SlotEvent.at >= lower)
    if upper is not None:
        query = query.where(SlotEvent.at < upper)
    return query


def _bounds(f: AuditFilters):
    lower = upper = None
    if f.date_from:
        lower = clock.local_bounds(f.date_from, f.date_from)[0]
    if f.date_to:
        upper = clock.local_bounds(f.date_to, f.date_to)[1]
    return lower, upper


def audit_page(f: AuditFilters, page: int, per_page: int) -> AuditPage:
    page = min(max(page, 1), MAX_PAGE)
    lower, upper = _bounds(f)
    halves = []
    if f.wants_booking_events:
        halves.append(_booking_half(f, lower, upper))
    if f.wants_slot_events:
        halves.append(_slot_half(f, lower, upper))
    if not halves:
        return AuditPage(page=page)
    merged = (sa.union_all(*halves) if len(halves) > 1 else halves[0]).subquery()
    rows = db.session.execute(
        sa.select(merged.c.kind, merged.c.id)
        .order_by(merged.c.at.desc(), merged.c.kind, merged.c.id.desc())
        .limit(per_page + 1).offset((page - 1) * per_page)
    ).all()
    has_next = len(rows) > per_page
    rows = rows[:per_page]
    booking_ids = [r.id for r in rows if r.kind == "booking"]
    slot_ids = [r.id for r in rows if r.kind == "slot"]
    booking_events = {}
    if booking_ids:
        booking_events = {e.id: e for e in db.session.scalars(
            sa.select(BookingEvent).where(BookingEvent.id.in_(booking_ids)).options(
                joinedload(BookingEvent.actor),
                joinedload(BookingEvent.booking).joinedload(Booking.organisation),
                joinedload(BookingEvent.booking).joinedload(Booking.slot).joinedload(Slot.station),
                joinedload(BookingEvent.booking).joinedload(Booking.slot).joinedload(Slot.package),
            ))}
    slot_events = {}
    if slot_ids:
        slot_events = {e.id: e for e in db.session.scalars(
            sa.select(SlotEvent).where(SlotEvent.id.in_(slot_ids)).options(
                joinedload(SlotEvent.actor),
                joinedload(SlotEvent.slot).joinedload(Slot.station),
                joinedload(SlotEvent.slot).joinedload(Slot.package),
            ))}
    entries = []
    for row in rows:
        if row.kind == "booking":
            e = booking_events[row.id]
            entries.append(AuditEntry(
                kind="booking", id=e.id, at=e.at, actor=e.actor, action=e.action,
                label=action_label("booking", e.action), slot=e.booking.slot, booking=e.booking,
                from_status=e.from_status, to_status=e.to_status,
                text=" · ".join(t for t in (e.reason, e.detail_text) if t)))
        else:
            e = slot_events[row.id]
            entries.append(AuditEntry(
                kind="slot", id=e.id, at=e.at, actor=e.actor, action=e.action,
                label=action_label("slot", e.action), slot=e.slot, text=e.detail_text))
    return AuditPage(entries=entries, page=page, has_prev=page > 1, has_next=has_next and page < MAX_PAGE)
