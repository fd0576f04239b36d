"""Booking rules: the one domain layer every route, command and test goes through.

Each public function is one transaction: it locks the slot (row lock on PostgreSQL, the write
lock on SQLite), re-reads what it needs, counts places from the bookings themselves, writes the
change with a BookingEvent, and commits. Refusals raise :class:`BookingError` and change nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from blueprints.accounts.models import Organisation, User
from blueprints.catalog.models import Package, Slot, SlotEvent, SlotStatus, Station, package_stations
from blueprints.core import clock, phones
from blueprints.core.db import built_once, id_of, lock_rows, start_write_transaction
from blueprints.core.extensions import db
from blueprints.quotas import services as quotas

from .capacity import Availability, availability, availability_for
from .models import ENDED_STATUSES, HOLDING_STATUSES, Booking, BookingEvent, BookingStatus
from .notifications import notify


class BookingError(Exception):
    """A refusal with a message for the user; ``field`` names the form field it belongs to.

    A request refused for several reasons at once carries each of them in ``problems`` (one
    BookingError per reason, in the order the form shows them); the error itself speaks with the
    first one's message and field, so a caller that shows one message still shows a true one.
    """

    def __init__(self, message: str, field: str | None = None, *, booking_id: int | None = None,
                 waitlist_possible: bool = False, correction: bool = False,
                 problems: list["BookingError"] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.booking_id = booking_id
        self.waitlist_possible = waitlist_possible
        self.correction = correction  # a typing mistake in a field, not a rule of the slot
        self.problems: list[BookingError] = list(problems) if problems else [self]
        self.reading: Reading | None = None

    @classmethod
    def of(cls, problems: list["BookingError"]) -> "BookingError":
        """One error for several refusals. Joining the waitlist is offered when it answers every
        rule that refused (typing mistakes are corrected on the way)."""
        if len(problems) == 1:
            return problems[0]
        first = problems[0]
        rules = [problem for problem in problems if not problem.correction]
        return cls(first.message, first.field, booking_id=first.booking_id,
                   waitlist_possible=bool(rules) and all(problem.waitlist_possible for problem in rules),
                   problems=problems)


class NotAllowed(Exception):
    """The user may not touch this object at all (routes answer 404 to hide it)."""


@dataclass
class Reading:
    """What an unlocked refusal read (``_refuse_a_full_slot_without_locks``), handed to the page
    that shows the refusal: it shows the same moment that refused, without reading it again."""

    slot: Slot
    places: Availability
    own_booking: Booking | None = None
    open_to_organisation: bool = False  # neither the slot nor the organisation refuses


@dataclass(frozen=True)
class BookingRequest:
    headcount: int
    contact_name: str
    contact_phone: str
    note: str = ""


def normalise_phone(phone: str) -> str:
    """The number as stored (``core.phones``), or as typed when it is not a valid one."""
    return phones.normalise(phone) or (phone or "").strip()


def is_valid_phone(phone: str) -> bool:
    """A mainland mobile number (11 digits) or a landline with area code (021-64001234)."""
    return phones.is_valid(phone)


# -- reading --------------------------------------------------------------------------------

def visible_booking(user: User, booking_id: int) -> Booking:
    """The booking if ``user`` may see it: its organisation's secretary, its station's host, an admin."""
    booking = db.session.scalar(
        sa.select(Booking)
        .where(Booking.id == booking_id)
        .options(joinedload(Booking.slot).joinedload(Slot.package), joinedload(Booking.slot).joinedload(Slot.station),
                 joinedload(Booking.organisation))
    )
    if booking is None or not may_see(user, booking):
        raise NotAllowed()
    return booking


def may_see(user: User, booking: Booking) -> bool:
    if not user.active:
        return False
    if user.is_admin:
        return True
    if user.is_secretary:
        return booking.organisation_id == user.organisation_id
    return user.hosts_station(booking.slot.station_id)


def slot_refusal(slot: Slot) -> str | None:
    """Why nobody can book ``slot`` right now, or None."""
    if slot.status is SlotStatus.CANCELLED:
        return _("This slot has been cancelled.")
    if slot.status is SlotStatus.CLOSED:
        return _("Booking for this slot is closed.")
    if not slot.station.active or not slot.package.active or not _offered_at(slot):
        return _("This package is no longer offered here.")
    if clock.now() >= slot.starts_at:
        return _("This slot has already started.")
    if clock.now() > slot.booking_closes_at:
        return _("Booking closed %(hours)s hours before the start. Please call the station: %(phone)s.",
                 hours=slot.station.booking_cutoff_hours, phone=slot.station.phone or "—")
    return None


def organisation_refusal(organisation: Organisation | None) -> str | None:
    """Why ``organisation`` may not book, join a waitlist or take more places, or None."""
    if organisation is not None and not organisation.active:
        return _("%(organisation)s has been deactivated by the district administrators: it cannot book, "
                 "join a waitlist or add people. Its bookings stay as they are. Please contact the "
                 "district organisation department.", organisation=organisation.name)
    return None


@built_once
def _offered_at_statement():
    return sa.select(sa.literal(True)).select_from(package_stations).where(
        package_stations.c.package_id == sa.bindparam("package_id"),
        package_stations.c.station_id == sa.bindparam("station_id"),
    )


def _offered_at(slot: Slot) -> bool:
    """The slot's package is still on its station's menu."""
    return bool(db.session.scalar(_offered_at_statement(),
                                  {"package_id": slot.package_id, "station_id": slot.station_id}))


def bookings_in_period(organisation_id: int, category, start: date, end: date,
                       exclude_booking_id: int | None = None) -> int:
    lower, upper = clock.local_bounds(start, end)
    query = (
        sa.select(sa.func.count(Booking.id))
        .join(Slot, Slot.id == Booking.slot_id)
        .join(Package, Package.id == Slot.package_id)
        .where(
            Booking.organisation_id == organisation_id,
            Booking.status.not_in(ENDED_STATUSES),
            Package.category == category,
            Slot.starts_at >= lower,
            Slot.starts_at < upper,
        )
    )
    if exclude_booking_id is not None:
        query = query.where(Booking.id != exclude_booking_id)
    return db.session.scalar(query) or 0


def quota_refusal(organisation_id: int, slot: Slot, exclude_booking_id: int | None = None) -> str | None:
    """The quota rule (``quotas/services.py``) for one more booking of ``slot``, its bookings
    counted here (``exclude_booking_id``: the booking being moved)."""
    category = slot.package.category
    return quotas.quota_refusal(
        organisation_id, category, clock.to_local(slot.starts_at).date(),
        lambda start, end: bookings_in_period(organisation_id, category, start, end, exclude_booking_id))


@built_once
def _active_booking_statement():
    return sa.select(Booking).where(
        Booking.organisation_id == sa.bindparam("organisation_id"),
        Booking.slot_id == sa.bindparam("slot_id"),
        Booking.status.not_in(ENDED_STATUSES),
    )


def active_booking_of(organisation_id: int, slot_id: int) -> Booking | None:
    return db.session.scalar(_active_booking_statement(), {"organisation_id": organisation_id, "slot_id": slot_id})


# -- the transaction helpers ----------------------------------------------------------------

def _locked_slot(slot_id: int) -> Slot:
    start_write_transaction()
    return _lock_slot(slot_id)


def _locked_organisation_and_slot(organisation_id: int, slot_id: int) -> tuple[Organisation, Slot]:
    """Lock the organisation, then the slot: every new booking of one organisation waits for the
    previous one, so its quotas are counted by one transaction at a time, whichever slots they
    are for. Always in this order, and nothing locks a slot and then an organisation; FOR NO KEY
    UPDATE lets the rows that refer to the organisation (bookings, events) be written meanwhile."""
    start_write_transaction()
    organisation = lock_rows(_organisation_statement(), key_share=True,
                             parameters={"organisation_id": organisation_id}).scalar_one()
    return organisation, _lock_slot(slot_id)


@built_once
def _organisation_statement():
    return sa.select(Organisation).where(Organisation.id == sa.bindparam("organisation_id"))


@built_once
def _slot_with_station_and_package_statement():
    return sa.select(Slot).where(Slot.id == sa.bindparam("slot_id")).options(
        joinedload(Slot.station, innerjoin=True), joinedload(Slot.package, innerjoin=True))


def _lock_slot(slot_id: int) -> Slot:
    # Station and package come with the lock: every statement saved here is saved while other
    # bookings of the slot wait (bench/RESULTS.md).
    slot = lock_rows(_slot_with_station_and_package_statement(), of=Slot,
                     parameters={"slot_id": slot_id}).unique().scalar_one_or_none()
    if slot is None:
        raise NotAllowed()
    return slot


def _locked_booking(user: User, booking_id: int) -> tuple[Booking, Slot]:
    start_write_transaction()
    slot_id = db.session.scalar(sa.select(Booking.slot_id).where(Booking.id == booking_id))
    if slot_id is None:
        raise NotAllowed()
    slot = lock_rows(sa.select(Slot).where(Slot.id == slot_id)).scalar_one()
    booking = db.session.get(Booking, booking_id, populate_existing=True)
    if booking.slot_id != slot_id:  # moved to another slot meanwhile (``move``): lock that one instead
        return _locked_booking(user, booking_id)
    if not may_see(user, booking):
        db.session.rollback()
        raise NotAllowed()
    return booking, slot


def record(booking: Booking, to_status: BookingStatus, actor: User | None, action: str,
           reason: str = "", detail: str = "") -> BookingEvent:
    """Change ``booking`` to ``to_status`` (or leave it, for edits), bump its revision, log it."""
    event = BookingEvent(
        booking=booking,
        actor_id=id_of(actor) if actor else None,
        from_status=booking.status if booking.id else None,
        to_status=to_status,
        action=action,
        reason=reason,
        detail=detail,
        at=clock.now(),
    )
    booking.status = to_status
    booking.revision = (booking.revision or 0) + (1 if booking.id else 0)
    booking.updated_at = clock.now()
    db.session.add(event)
    return event


def _refuse(message: str, field: str | None = None, **kwargs):
    db.session.rollback()
    raise BookingError(message, field, **kwargs)


def _refuse_all(problems: list[BookingError]):
    db.session.rollback()
    raise BookingError.of(problems)


def _group_size_problem(package: Package, headcount: int) -> BookingError | None:
    if headcount < package.min_group_size or headcount > package.max_group_size:
        return BookingError(_("This package takes groups of %(min)s to %(max)s people.",
                              min=package.min_group_size, max=package.max_group_size), "headcount")
    return None


def _fits_the_slot_problem(slot: Slot, headcount: int) -> BookingError | None:
    """A waitlisted group bigger than the whole slot would wait for ever."""
    if headcount > slot.capacity:
        return BookingError(_("This slot takes %(capacity)s people in all, so a group of %(headcount)s cannot "
                              "be placed, not even from the waitlist.", capacity=slot.capacity, headcount=headcount),
                            "headcount")
    return None


def _already_booked(organisation: Organisation) -> str:
    return _("This slot is already booked by %(own)s.", own=organisation.self_name)


def _request_problems(request: BookingRequest, *, partial: bool = False) -> list[BookingError]:
    """What is wrong with the request's own fields, each at its field. ``partial``: a field given
    as None is not checked (the form has already said what is wrong with it)."""
    problems = []
    if not (partial and request.headcount is None) and (request.headcount is None or request.headcount < 1):
        problems.append(BookingError(_("Please give the number of people (at least 1)."), "headcount",
                                     correction=True))
    if not (partial and request.contact_name is None) and not (request.contact_name or "").strip():
        problems.append(BookingError(_("Please give a contact name."), "contact_name", correction=True))
    if not (partial and request.contact_phone is None) and not is_valid_phone(request.contact_phone or ""):
        problems.append(BookingError(
            _("Please give a mainland mobile number (11 digits) or a landline with area code."), "contact_phone",
            correction=True))
    return problems


def _placement(slot: Slot, headcount: int, join_waitlist: bool,
               places: Availability | None = None) -> tuple[BookingStatus | None, BookingError | None]:
    """Where a group of ``headcount`` goes in ``slot`` (the package's group size already checked):
    its status, or why there is no room. ``places``: as already read in this transaction."""
    if places is None:
        places = availability(slot.id)
    if places.remaining >= headcount:
        return (BookingStatus.PENDING if slot.station.requires_approval else BookingStatus.CONFIRMED), None
    if join_waitlist:
        problem = _fits_the_slot_problem(slot, headcount)
        return (None, problem) if problem else (BookingStatus.WAITLISTED, None)
    if places.groups_full:
        return None, BookingError(_("This slot has no room for another group. You can join the waitlist."),
                                  waitlist_possible=True)
    if places.remaining > 0 and not places.fits_group(slot.package.min_group_size):
        # Fewer people would not help: nobody may book fewer than the smallest group.
        return None, BookingError(
            _("Only %(remaining)s places are left, fewer than the smallest group of %(min)s people: "
              "this slot cannot be booked, but you can join the waitlist.",
              remaining=places.remaining, min=slot.package.min_group_size),
            waitlist_possible=True)
    return None, BookingError(_("Only %(remaining)s places are left. Book fewer people or join the waitlist.",
                                remaining=places.remaining), "headcount", waitlist_possible=True)


def _assess(organisation: Organisation, slot: Slot, request: BookingRequest, join_waitlist: bool, *,
            partial: bool = False, reading: Reading | None = None) -> tuple[list[BookingError], BookingStatus | None]:
    """Every reason to refuse ``request`` at once (the request's fields, then the slot's and the
    organisation's rules), or none and the status the booking gets. ``reading``: the places
    already read, and where to note what else was read."""
    problems = _request_problems(request, partial=partial)
    refusal = organisation_refusal(organisation) or slot_refusal(slot)
    if refusal:
        return [*problems, BookingError(refusal)], None
    existing = active_booking_of(organisation.id, slot.id)
    if reading is not None:
        reading.open_to_organisation, reading.own_booking = True, existing
    if existing:  # alone: the page sends the user to that booking
        return [BookingError(_already_booked(organisation), booking_id=existing.id)], None
    headcount = request.headcount if request.headcount is not None and request.headcount >= 1 else None
    group_problem = _group_size_problem(slot.package, headcount) if headcount is not None else None
    if group_problem:
        problems.append(group_problem)
    refusal = quota_refusal(organisation.id, slot)
    if refusal:
        problems.append(BookingError(refusal))
    status = None
    if headcount is not None and group_problem is None:  # places matter only for a group that may come
        status, place_problem = _placement(slot, headcount, join_waitlist,
                                           reading.places if reading is not None else None)
        if place_problem:
            problems.append(place_problem)
    return problems, (None if problems else status)


# -- booking --------------------------------------------------------------------------------

def book(user: User, slot_id: int, request: BookingRequest, *, join_waitlist: bool = False) -> Booking:
    """Book ``slot_id`` for the user's organisation: confirmed, pending approval, or waitlisted.
    A refusal names every reason at once (``BookingError.problems``)."""
    if not user.active or not user.is_secretary or user.organisation_id is None:
        raise NotAllowed()
    _refuse_a_full_slot_without_locks(user, slot_id, request, join_waitlist)

    organisation, slot = _locked_organisation_and_slot(user.organisation_id, slot_id)
    organisation_id = organisation.id
    problems, status = _assess(organisation, slot, request, join_waitlist)
    if problems:
        _refuse_all(problems)

    booking = Booking(
        slot=slot,
        organisation_id=organisation_id,
        created_by_id=id_of(user),
        headcount=request.headcount,
        contact_name=request.contact_name.strip(),
        contact_phone=normalise_phone(request.contact_phone),
        note=request.note.strip(),
        status=status,
        revision=0,
    )
    try:
        db.session.add(booking)
        record(booking, status, user, "created")
        db.session.flush()
        notify(status.value, booking)
        if status is BookingStatus.PENDING:
            notify("new_pending", booking)
        db.session.commit()
    except IntegrityError:
        # The partial unique index caught a concurrent double booking.
        db.session.rollback()
        existing = active_booking_of(organisation_id, slot_id)
        raise BookingError(_already_booked(db.session.get(Organisation, organisation_id)),
                           booking_id=existing.id if existing else None) from None
    return booking


def _refuse_a_full_slot_without_locks(user: User, slot_id: int, request: BookingRequest,
                                      join_waitlist: bool) -> None:
    """When a popular slot fills, most requests that follow are refused: seen without a lock, a
    slot that had no room at that moment refuses them just as truly (at that moment), and they
    no longer queue behind the bookings that hold its lock. Anything else is decided under it."""
    if join_waitlist or request.headcount is None or request.headcount < 1:
        return
    seen = availability_for([slot_id]).get(slot_id)
    if seen is None or seen.remaining >= request.headcount:
        return
    problems, reading = _problems_and_reading(user, slot_id, request, False, seen)
    if problems:
        # No rollback here: the refused page shows what was read (``BookingError.reading``), and
        # the request's end closes this read-only transaction.
        error = BookingError.of(problems)
        error.reading = reading
        raise error
    db.session.rollback()  # nothing read here may stand in for what the locks will read


def booking_problems(user: User, slot_id: int, request: BookingRequest, *,
                     join_waitlist: bool = False) -> list[BookingError]:
    """Every reason ``book`` would refuse ``request`` now, for a form to show them in one round
    with its own errors. Reads only, takes no lock (``book`` checks again under it); a field given
    as None is not checked."""
    return _problems_and_reading(user, slot_id, request, join_waitlist)[0]


def _problems_and_reading(user: User, slot_id: int, request: BookingRequest, join_waitlist: bool,
                          places: Availability | None = None) -> tuple[list[BookingError], Reading | None]:
    if not user.active or not user.is_secretary or user.organisation_id is None:
        raise NotAllowed()
    # The route has usually loaded the slot with its station and package already: no statement then.
    slot = db.session.get(Slot, slot_id, options=[joinedload(Slot.station, innerjoin=True),
                                                  joinedload(Slot.package, innerjoin=True)])
    organisation = db.session.get(Organisation, user.organisation_id)
    if slot is None or organisation is None:
        raise NotAllowed()
    reading = Reading(slot, places) if places is not None else None
    problems, _status = _assess(organisation, slot, request, join_waitlist, partial=True, reading=reading)
    return problems, reading


def change_headcount(user: User, booking_id: int, headcount: int) -> Booking:
    """Change the group's size. More people at a station that approves bookings: a confirmed
    booking goes back to pending (its places stay held) until the host approves the new size."""
    booking, slot = _locked_booking(user, booking_id)
    refusal = booking.change_refusal(user) or slot_refusal(slot)
    if refusal:
        _refuse(refusal)
    # Every reason at once: the group size, the organisation's state, the places.
    problem = _group_size_problem(slot.package, headcount)
    if problem is None and booking.status is BookingStatus.WAITLISTED:
        problem = _fits_the_slot_problem(slot, headcount)
    problems = [problem] if problem else []
    if headcount == booking.headcount and not problems:
        db.session.rollback()
        return booking
    raising = headcount > booking.headcount
    if raising:
        refusal = organisation_refusal(booking.organisation)
        if refusal:
            problems.append(BookingError(refusal, "headcount"))
    if booking.holds_places and raising and not problems:
        extra = headcount - booking.headcount
        places = availability(slot.id)
        left = places.capacity - places.held
        if extra > left:
            problems.append(BookingError(_("Only %(remaining)s more places are left.", remaining=max(left, 0)),
                                         "headcount"))
    if problems:
        _refuse_all(problems)
    old = booking.headcount
    reapproval = raising and booking.status is BookingStatus.CONFIRMED and slot.station.requires_approval
    booking.headcount = headcount
    record(booking, BookingStatus.PENDING if reapproval else booking.status, user, "headcount_changed",
           detail=f"{old} → {headcount}")
    db.session.flush()
    if reapproval:
        notify("reapproval", booking, old=old)
        notify("headcount_raised", booking, old=old)
    promote_waitlist(slot)
    db.session.commit()
    return booking


def cancel(user: User, booking_id: int, reason: str = "") -> Booking:
    """Cancel a booking: the branch before the station's deadline, the station's host or an admin any time."""
    booking, slot = _locked_booking(user, booking_id)
    refusal = booking.cancel_refusal(user, clock.now())
    if refusal:
        _refuse(refusal)
    by_branch = booking.is_own_branch(user)
    if not by_branch and not reason.strip():
        _refuse(_("Please give the branch a reason."), "reason")
    held = booking.holds_places
    record(booking, BookingStatus.CANCELLED, user, "cancelled", reason=reason.strip()[:500])
    db.session.flush()
    notify("cancelled_by_branch" if by_branch else "cancelled_by_station", booking, reason=reason.strip())
    if held:
        promote_waitlist(slot)
    db.session.commit()
    return booking


def approve(user: User, booking_id: int) -> Booking:
    booking, slot = _locked_booking(user, booking_id)
    _require_station_staff(user, slot)
    if booking.status is not BookingStatus.PENDING:
        _refuse(_("This booking is no longer awaiting approval (it is %(status)s).", status=booking.status.label))
    if availability(slot.id).held > slot.capacity:
        _refuse(_("Approving this booking would exceed the slot's capacity."))
    record(booking, BookingStatus.CONFIRMED, user, "approved")
    notify("approved", booking)
    db.session.commit()
    return booking


def decline(user: User, booking_id: int, reason: str) -> Booking:
    booking, slot = _locked_booking(user, booking_id)
    _require_station_staff(user, slot)
    if not reason.strip():
        _refuse(_("Please give the branch a reason."), "reason")
    if booking.status not in (BookingStatus.PENDING, BookingStatus.WAITLISTED):
        _refuse(_("This booking is no longer awaiting approval (it is %(status)s).", status=booking.status.label))
    record(booking, BookingStatus.DECLINED, user, "declined", reason=reason.strip()[:500])
    db.session.flush()
    notify("declined", booking, reason=reason.strip())
    promote_waitlist(slot)
    db.session.commit()
    return booking


def check_in(user: User, booking_id: int, attended_headcount: int) -> Booking:
    """Record the group as attended with the number of people who actually came."""
    booking, slot = _locked_booking(user, booking_id)
    _require_station_staff(user, slot)
    if booking.status not in (BookingStatus.CONFIRMED, BookingStatus.ATTENDED, BookingStatus.NO_SHOW):
        _refuse(_("Only confirmed bookings can be checked in (this one is %(status)s).", status=booking.status.label))
    if attended_headcount is None or attended_headcount < 0 or attended_headcount > slot.capacity:
        _refuse(_("Please give the number of people who came (0 to %(max)s).", max=slot.capacity),
                "attended_headcount")
    if not slot.check_in_is_open(clock.now()):
        _refuse(_("Check-in opens on the day of the slot."))
    booking.attended_headcount = attended_headcount
    booking.checked_in_at = clock.now()
    record(booking, BookingStatus.ATTENDED, user, "checked_in", detail=str(attended_headcount))
    db.session.commit()
    return booking


def mark_no_shows(slot_id: int, actor: User | None = None) -> int:
    """After a slot has ended, its confirmed bookings that nobody checked in become no-shows
    (a host's explicit action, or ``flask bookings settle``; never a page view)."""
    slot = _locked_slot(slot_id)
    if clock.now() < slot.ends_at:
        db.session.rollback()
        return 0
    missing = db.session.scalars(
        sa.select(Booking).where(Booking.slot_id == slot.id, Booking.status == BookingStatus.CONFIRMED)
    ).all()
    for booking in missing:
        record(booking, BookingStatus.NO_SHOW, actor, "no_show")
    if missing:
        db.session.add(SlotEvent(slot_id=slot.id, actor_id=actor.id if actor else None, action="no_shows_marked",
                                 detail=str(len(missing)), at=clock.now()))
    db.session.commit()
    return len(missing)


SETTLE_BATCH = 200


def settle_ended_slots() -> tuple[int, int]:
    """Settle every slot that has ended with confirmed bookings nobody checked in; returns
    (slots, bookings). One transaction per slot, so a long run never holds many locks."""
    slots = bookings = 0
    while True:
        ended = list(db.session.scalars(
            sa.select(Slot.id).where(Slot.ends_at <= clock.now(), Slot.id.in_(
                sa.select(Booking.slot_id).where(Booking.status == BookingStatus.CONFIRMED)))
            .order_by(Slot.id).limit(SETTLE_BATCH)))
        db.session.rollback()
        for slot_id in ended:
            settled = mark_no_shows(slot_id)
            slots += bool(settled)
            bookings += settled
        if len(ended) < SETTLE_BATCH:
            return slots, bookings


def _require_station_staff(user: User, slot: Slot) -> None:
    if not user.runs_station(slot.station_id):
        db.session.rollback()
        raise NotAllowed()


def promote_waitlist(slot: Slot) -> list[Booking]:
    """Inside the slot's lock: move waitlisted bookings, oldest first, into the freed places.

    Only until the booking cut-off: after it the station plans with the groups it has, and a
    branch moved up then could no longer cancel online. Places freed later stay free.
    """
    if not slot.takes_bookings():
        return []
    waiting = db.session.scalars(
        sa.select(Booking)
        .where(Booking.slot_id == slot.id, Booking.status == BookingStatus.WAITLISTED)
        .options(joinedload(Booking.organisation))
        .order_by(Booking.created_at, Booking.id)
    ).all()
    promoted = []
    for booking in waiting:
        if organisation_refusal(booking.organisation):
            continue  # a deactivated organisation keeps its place in the queue but gains none
        places = availability(slot.id)
        if places.groups_full:
            break
        if booking.headcount > places.remaining:
            continue
        target = BookingStatus.PENDING if slot.station.requires_approval else BookingStatus.CONFIRMED
        record(booking, target, None, "promoted")
        db.session.flush()
        notify("promoted", booking)
        if target is BookingStatus.PENDING:
            notify("new_pending", booking)
        promoted.append(booking)
    return promoted


def bookings_of(booking_ids: list[int]) -> list[Booking]:
    return list(db.session.scalars(sa.select(Booking).where(Booking.id.in_(booking_ids))))


__all__ = [
    "BookingError", "NotAllowed", "BookingRequest", "book", "booking_problems", "change_headcount", "cancel",
    "approve",
    "decline", "check_in", "mark_no_shows", "settle_ended_slots", "promote_waitlist", "record", "visible_booking", "may_see",
    "slot_refusal", "organisation_refusal", "is_valid_phone", "HOLDING_STATUSES",
]



# -- moving a booking to another slot (改期, issue 15 item 2) ----------------------------------

# A move always ends holding places on the new slot. Pending and confirmed bookings take theirs
# along; a waitlisted one may take places on another slot of its package (it keeps its number
# and its count against the quota instead of being cancelled and booked again) — never a place
# on another waitlist. Which bookings may leave their slot, and until when, is
# ``Booking.leaving_refusal``; who moves them, ``Booking.can_move``.


def _at_slot(message: str) -> BookingError:
    return BookingError(message, "slot_id")


def _arrival_problems(organisation: Organisation, booking: Booking,
                      slot: Slot) -> tuple[list[BookingError], BookingStatus | None]:
    """Every reason ``booking`` may not move to ``slot`` — the rules of booking it, the booking
    itself not counted against its organisation's quota — or none and its status there."""
    if slot.id == booking.slot_id:
        return [_at_slot(_("The booking is already on this slot: please choose another one."))], None
    if slot.package_id != booking.slot.package_id:
        return [_at_slot(_("A booking can only move to another slot of the same package."))], None
    refusal = organisation_refusal(organisation) or slot_refusal(slot)
    if refusal:
        return [_at_slot(refusal)], None
    if active_booking_of(organisation.id, slot.id):
        return [_at_slot(_already_booked(organisation))], None
    problems = []
    group_problem = _group_size_problem(slot.package, booking.headcount)
    if group_problem:
        problems.append(_at_slot(group_problem.message))
    refusal = quota_refusal(organisation.id, slot, exclude_booking_id=booking.id)
    if refusal:
        problems.append(_at_slot(refusal))
    status, no_room = _placement(slot, booking.headcount, join_waitlist=False)
    if no_room:  # the waitlist it would offer is no place to move to
        problems.append(_at_slot(_("This slot has only %(remaining)s places left, not enough for your %(headcount)s "
                                   "people.", remaining=availability(slot.id).remaining,
                                   headcount=booking.headcount)))
    return problems, (None if problems else status)


def _locked_for_move(user: User, booking_id: int, slot_id: int) -> tuple[Organisation, Booking, Slot, Slot]:
    """The organisation's lock (as booking takes it), then the booking's slot and the target slot
    in id order: moves between two slots in opposite directions never wait for each other."""
    current = db.session.scalar(sa.select(Booking.slot_id).where(
        Booking.id == booking_id, Booking.organisation_id == user.organisation_id))
    if current is None:
        db.session.rollback()
        raise NotAllowed()
    if db.session.scalar(sa.select(Slot.id).where(Slot.id == slot_id)) is None:
        _refuse(_("Please choose one of the slots listed."), "slot_id")
    first, *rest = sorted({current, slot_id})
    organisation, _first = _locked_organisation_and_slot(user.organisation_id, first)
    for other in rest:
        _lock_slot(other)
    booking = db.session.get(Booking, booking_id, populate_existing=True)
    if booking.slot_id != current:  # moved meanwhile: lock the slot it is on now
        return _locked_for_move(user, booking_id, slot_id)
    return organisation, booking, db.session.get(Slot, current), db.session.get(Slot, slot_id)


def _slot_text(slot: Slot) -> str:
    """A slot as the booking's history names it, the same in every language: date, time, station."""
    start, end = clock.to_local(slot.starts_at), clock.to_local(slot.ends_at)
    return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M} {slot.station.name}"


def _when(slot: Slot) -> str:
    """A slot's time as notifications say it (``notifications.booking_params``)."""
    from blueprints.core.i18n import in_default_language
    from blueprints.core.templating import time_range

    with in_default_language():
        return time_range(slot.starts_at, slot.ends_at)


def _keep_sequences_rising(booking: Booking, revision_before: int, old: Slot, new: Slot) -> None:
    """Calendar SEQUENCEs never fall. The booking's event counts ``booking.revision +
    slot.revision`` (feeds/ics.py): on a slot of a lower revision it rises by the difference too.
    The old slot's host event counts its revision plus the bookings ever on it and their revisions
    (feeds/routes.py): it loses this one and its ``revision_before``, so the slot gains one more."""
    booking.revision += max(0, old.revision - new.revision)
    old.revision += revision_before + 2


def move(user: User, booking_id: int, slot_id: int) -> Booking:
    """Move the booking to another slot of its package, in one transaction under the booking's
    locks: the new places are secured (every rule of booking them) before the old ones are
    released (its cancellation deadline) and offered to the old slot's waitlist. The booking
    keeps its id (its calendar UID); it is pending again at a station that approves bookings."""
    if not user.active or not user.is_secretary or user.organisation_id is None:
        raise NotAllowed()
    organisation, booking, old, new = _locked_for_move(user, booking_id, slot_id)
    refusal = booking.leaving_refusal(clock.now())
    if refusal:
        _refuse(refusal, "slot_id")
    problems, status = _arrival_problems(organisation, booking, new)
    if problems:
        _refuse_all(problems)
    held, revision_before = booking.holds_places, booking.revision
    record(booking, status, user, "moved", detail=f"{_slot_text(old)} → {_slot_text(new)}")
    _keep_sequences_rising(booking, revision_before, old, new)
    if old.station_id != new.station_id:  # its hosts, told while the booking is still theirs
        notify("moved_out", booking, new_when=_when(new), new_station=new.station.name)
    booking.slot = new
    try:
        db.session.flush()
    except IntegrityError:  # the partial unique index: one active booking per organisation and slot
        db.session.rollback()
        raise BookingError(_already_booked(db.session.get(Organisation, user.organisation_id)), "slot_id") from None
    notify("moved_in", booking, old_when=_when(old), old_station=old.station.name)
    notify("moved", booking, old_when=_when(old), old_station=old.station.name)
    if held:
        promote_waitlist(old)
    db.session.commit()
    return booking


def move_choices(booking: Booking, page: int, per_page: int):
    """The slots ``booking`` could move to, a page at a time: the other upcoming open slots of its
    package at every active station offering it, still before that station's booking cut-off,
    soonest first. Places and the organisation's other bookings are the caller's to show
    (``availability_for``, ``booked_slot_ids``): a full slot is listed, marked. Three statements
    whatever the number of slots: the stations' cut-offs, the page and its count."""
    package = booking.slot.package
    offered = sa.and_(package_stations.c.package_id == package.id, package_stations.c.station_id == Slot.station_id)
    cutoffs = db.session.scalars(
        sa.select(Station.booking_cutoff_hours).distinct()
        .join(package_stations, package_stations.c.station_id == Station.id)
        .where(package_stations.c.package_id == package.id, Station.active)
    ).all()
    now = clock.now()
    in_time = [sa.and_(Station.booking_cutoff_hours == hours, Slot.starts_at >= now + timedelta(hours=hours))
               for hours in cutoffs]
    query = (
        sa.select(Slot)
        .join(Station, Station.id == Slot.station_id)
        .where(Slot.package_id == package.id, Slot.id != booking.slot_id, Slot.status == SlotStatus.OPEN,
               Slot.starts_at > now, Station.active, sa.exists().where(offered),
               sa.or_(*in_time) if in_time and package.active else sa.false())
        .order_by(Slot.starts_at, Slot.id)
        .options(sa.orm.contains_eager(Slot.station))
    )
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


def booked_slot_ids(organisation_id: int, slot_ids: list[int]) -> set[int]:
    """Which of ``slot_ids`` the organisation already holds an active booking of (one statement)."""
    if not slot_ids:
        return set()
    return set(db.session.scalars(sa.select(Booking.slot_id).where(
        Booking.organisation_id == organisation_id, Booking.slot_id.in_(slot_ids),
        Booking.status.not_in(ENDED_STATUSES))))


__all__ += ["move", "move_choices", "booked_slot_ids"]
