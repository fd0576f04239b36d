"""A past quarter of the demo district, lived through the domain: slots created by their hosts,
booked by the secretaries, approved, declined or cancelled, checked in on the day, and the groups
that did not come settled as no-shows after the end, each step by the same service function a
request or ``flask bookings settle`` calls, with the clock set to the moment it happened. So every
Booking, BookingEvent and SlotEvent row is what the real flow writes, and the statistics of the
current quarter have attended sessions, no-shows and cancellations to count.

Deterministic (fixed seed, dates relative to "now"), and loaded once: a district whose demo
stations already have settled bookings (attended or no-show) gets none. The last organisations of
a district of eight or more (``QUIET``) never book, in the past or in the upcoming demo bookings,
so coverage shows branches that have held no themed Party day this quarter.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

import sqlalchemy as sa

from blueprints.accounts.models import Organisation, Role, User
from blueprints.booking import services as booking
from blueprints.booking.models import Booking, BookingStatus, Notification
from blueprints.catalog.models import Package, Slot, Station
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.host import services as host_services

from . import data

HISTORY_DAYS = 91  # 13 weeks: always covers the part of the current quarter that has passed
QUIET = 3  # organisations left without a booking (when the district has at least QUIET_FROM)
QUIET_FROM = 8
HOLIDAYS = ((10, 1), (10, 2), (10, 3), (10, 4), (10, 5), (10, 6), (10, 7), (1, 1), (5, 1))  # no sessions
CANCEL_REASONS = ("支部活动改期", "与上级组织会议时间冲突", "参加人员临时有公务安排", "")
DECLINE_REASON = "该时段站点已安排接待任务，请改约其他场次"


def quiet_organisations(organisations: list[Organisation]) -> list[Organisation]:
    """Organisations the demo never books for (coverage must show some without a themed Party day)."""
    return organisations[-QUIET:] if len(organisations) >= QUIET_FROM else []


@contextmanager
def clock_at(moment: datetime):
    """Run the block as if it were ``moment``: every ``clock.now()`` (events, timestamps, the
    rules' deadlines) answers it. For the demo loader only, in a command's single thread."""
    real = clock.now
    clock.now = lambda: moment
    try:
        yield
    finally:
        clock.now = real


@dataclass
class _SlotPlan:
    package: Package
    station: Station
    starts_at: datetime
    capacity: int
    slot_id: int | None = None


@dataclass
class _BookingPlan:
    slot: _SlotPlan
    organisation: Organisation
    headcount: int
    fate: str  # attended, no_show, cancelled, declined
    attended: int = 0
    booking_id: int | None = None


@dataclass(order=True)
class _Step:
    at: datetime
    order: int
    run: Callable[[], None] = field(compare=False)


def history_loaded(stations: list[Station]) -> bool:
    return db.session.scalar(
        sa.select(Booking.id).join(Slot, Slot.id == Booking.slot_id)
        .where(Slot.station_id.in_([s.id for s in stations]),
               Booking.status.in_((BookingStatus.ATTENDED, BookingStatus.NO_SHOW)))
        .limit(1)
    ) is not None


def load_history(packages: list[Package], organisations: list[Organisation], now: datetime | None = None) -> dict:
    """Play a past quarter (``HISTORY_DAYS`` up to ``now``) through the booking services, unless
    it is there already. Returns how many ended slots and their bookings the demo stations have."""
    now = now or clock.now()
    stations = sorted({s for p in packages for s in p.stations}, key=lambda s: s.id)
    if not history_loaded(stations):
        _play(packages, organisations, stations, now)
    return _past_counts(stations, now)


def _past_counts(stations: list[Station], now: datetime) -> dict:
    ended = sa.select(Slot.id).where(Slot.station_id.in_([s.id for s in stations]), Slot.ends_at < now)
    return {
        "past slots": db.session.scalar(sa.select(sa.func.count()).select_from(ended.subquery())),
        "past bookings": db.session.scalar(
            sa.select(sa.func.count()).select_from(Booking).where(Booking.slot_id.in_(ended))),
    }


def _play(packages, organisations, stations, now: datetime) -> None:
    hosts = _hosts(stations)
    secretaries = _secretaries(organisations)
    quiet = {o.id for o in quiet_organisations(organisations)}
    bookers = [o for o in organisations if o.id not in quiet and o.id in secretaries]
    if not bookers:
        return
    slots, plans = _plan(packages, bookers, now, hosts)
    steps = _steps(slots, plans, hosts, secretaries)
    steps += _rating_steps(plans, secretaries, now, first_order=len(steps))
    for step in sorted(steps):
        with clock_at(step.at):
            try:
                step.run()
            except (booking.BookingError, booking.NotAllowed, host_services.HostError):
                db.session.rollback()  # a rule of this database said no (e.g. a quota): skip it
    booking_ids = [p.booking_id for p in plans if p.booking_id]
    # The messages of a past quarter were read back then; an inbox of old news helps nobody.
    if booking_ids:
        db.session.execute(
            sa.update(Notification)
            .where(Notification.booking_id.in_(booking_ids), Notification.read_at.is_(None))
            .values(read_at=Notification.created_at)
        )
    db.session.commit()


def _hosts(stations: list[Station]) -> dict[int, User]:
    hosts = {}
    for station in stations:
        for host in sorted(station.hosts, key=lambda u: u.id):
            if host.active and host.role is Role.HOST:
                hosts.setdefault(station.id, host)
    return hosts


def _secretaries(organisations: list[Organisation]) -> dict[int, User]:
    users = db.session.scalars(
        sa.select(User).where(User.role == Role.SECRETARY, User.active.is_(True),
                              User.organisation_id.in_([o.id for o in organisations]))
        .order_by(User.id)
    )
    found: dict[int, User] = {}
    for user in users:
        found.setdefault(user.organisation_id, user)
    return found


def _plan(packages, bookers, now: datetime, hosts) -> tuple[list[_SlotPlan], list[_BookingPlan]]:
    rng = random.Random(1949)
    offered: dict[int, list[Package]] = {}
    for package in packages:
        for station in package.stations:
            if package.active and station.active and station.id in hosts:
                offered.setdefault(station.id, []).append(package)
    stations = sorted({s for p in packages for s in p.stations if s.id in offered}, key=lambda s: s.id)
    first_day = clock.to_local(now).date() - timedelta(days=HISTORY_DAYS)
    slots: list[_SlotPlan] = []
    plans: list[_BookingPlan] = []
    if not stations:
        return slots, plans
    turn = 0  # stations take turns (as many slots in a row as stations cover them all), each its packages
    for week in range(HISTORY_DAYS // 7 + 1):
        monday = first_day - timedelta(days=first_day.weekday()) + timedelta(weeks=week)
        for _ in range(rng.choice((2, 3, 3, 4))):
            day = monday + timedelta(days=rng.randrange(6))  # Monday to Saturday
            if day < first_day or (day.month, day.day) in HOLIDAYS:
                continue
            station = stations[turn % len(stations)]
            package = offered[station.id][(turn // len(stations)) % len(offered[station.id])]
            turn += 1
            hour, minute = rng.choice(data.SLOT_TIMES)
            starts_at = clock.local_datetime(day, hour, minute)
            if starts_at + timedelta(minutes=package.duration_minutes + 60) > now:
                continue
            if any(s.station.id == station.id and s.starts_at == starts_at for s in slots):
                continue
            capacity = rng.choice(data.CAPACITIES)
            slot = _SlotPlan(package, station, starts_at, capacity)
            slots.append(slot)
            plans += _bookings_of(slot, bookers, rng)
    return slots, plans


def _bookings_of(slot: _SlotPlan, bookers, rng: random.Random) -> list[_BookingPlan]:
    package = slot.package
    plans, held = [], 0
    for organisation in rng.sample(bookers, k=min(len(bookers), rng.choice((1, 2, 2, 3, 3, 4)))):
        high = min(package.max_group_size, max(package.min_group_size, organisation.member_count or 0), 25)
        headcount = rng.randint(package.min_group_size, max(package.min_group_size, high))
        if held + headcount > slot.capacity:
            break
        roll = rng.random()
        if roll < 0.14:
            fate = "cancelled"
        elif roll < 0.17 and slot.station.requires_approval:
            fate = "declined"
        elif roll < 0.30:
            fate = "no_show"
        else:
            fate = "attended"
        attended = max(1, headcount - rng.choice((0, 0, 0, 1, 1, 2, 3))) if fate == "attended" else 0
        plans.append(_BookingPlan(slot, organisation, headcount, fate, attended))
        if fate not in ("cancelled", "declined"):
            held += headcount
    return plans


def _steps(slots, plans, hosts, secretaries) -> list[_Step]:
    rng = random.Random(1921)
    steps: list[_Step] = []

    def add(at: datetime, run: Callable[[], None]) -> None:
        steps.append(_Step(at, len(steps), run))

    for slot in slots:
        host = hosts[slot.station.id]
        created = slot.starts_at - timedelta(days=rng.randint(18, 24), hours=rng.randint(0, 5))
        add(created, lambda slot=slot, host=host: _create_slot(slot, host))
        ends_at = slot.starts_at + timedelta(minutes=slot.package.duration_minutes)
        add(ends_at + timedelta(hours=1), lambda slot=slot: slot.slot_id and booking.mark_no_shows(slot.slot_id))
    for plan in plans:
        host = hosts[plan.slot.station.id]
        secretary = secretaries[plan.organisation.id]
        booked = plan.slot.starts_at - timedelta(days=rng.randint(5, 15), hours=rng.randint(0, 8))
        add(booked, lambda plan=plan, secretary=secretary: _book(plan, secretary))
        if plan.slot.station.requires_approval:
            if plan.fate == "declined":
                add(booked + timedelta(hours=20),
                    lambda plan=plan, host=host: plan.booking_id and booking.decline(host, plan.booking_id,
                                                                                     DECLINE_REASON))
            else:
                add(booked + timedelta(hours=20),
                    lambda plan=plan, host=host: plan.booking_id and booking.approve(host, plan.booking_id))
        if plan.fate == "cancelled":
            reason = rng.choice(CANCEL_REASONS)
            add(booked + timedelta(days=2),
                lambda plan=plan, secretary=secretary, reason=reason:
                plan.booking_id and booking.cancel(secretary, plan.booking_id, reason))
        elif plan.fate == "attended":
            add(plan.slot.starts_at + timedelta(minutes=rng.randint(-10, 20)),
                lambda plan=plan, host=host: plan.booking_id and booking.check_in(host, plan.booking_id,
                                                                                  plan.attended))
    return steps


def _create_slot(slot: _SlotPlan, host: User) -> None:
    created = host_services.create_slot(
        host, station_id=slot.station.id, package_id=slot.package.id, starts_at=slot.starts_at,
        ends_at=slot.starts_at + timedelta(minutes=slot.package.duration_minutes), capacity=slot.capacity,
    )
    slot.slot_id = created.id


def _book(plan: _BookingPlan, secretary: User) -> None:
    if not plan.slot.slot_id:
        return
    organisation = plan.organisation
    made = booking.book(secretary, plan.slot.slot_id, booking.BookingRequest(
        headcount=plan.headcount, contact_name=organisation.secretary_name or secretary.display_name,
        contact_phone=organisation.secretary_phone or secretary.phone or "",
    ))
    plan.booking_id = made.id


# -- feedback after the day (issue 15, item 5) -------------------------------------------------

RATED_SHARE = 0.7  # of the attended sessions, the share their branch rated
# (rating, comment): mostly content, a few reservations, some without a word. Natural comments of
# the kind branches leave after a themed Party day.
FEEDBACK = (
    (5, "讲解员准备充分，党员们听得很投入，结合进博会讲四史很有新意。"),
    (5, "场地安排周到，签到很快，老党员也照顾到了，下次还来。"),
    (5, "微党课内容紧扣实际，大家讨论很热烈，收获很大。"),
    (5, ""),
    (5, "志愿服务岗位分工清楚，带队的同志很耐心，年轻党员很有干劲。"),
    (4, "整体很好，就是互动环节时间稍短，希望能多留些交流时间。"),
    (4, "展陈内容丰富，讲解生动；现场人比较多，音响可以再大一点。"),
    (4, "组织有序，建议提前发一份活动流程，方便支部做台账。"),
    (4, ""),
    (4, "现场教学很有意义，停车不太方便，建议在通知里写明公交路线。"),
    (3, "内容不错，但开始时间推迟了二十分钟，影响了后面的安排。"),
    (3, "讲解偏长，实践环节少了一些，希望增加动手的内容。"),
    (2, "场地临时调整，没有提前通知到支部，党员找了好一会儿。"),
)

FEEDBACK_WEIGHTS = {5: 3, 4: 2, 3: 1, 2: 0.5, 1: 0.5}  # most branches are content (about 4.4 on average)


def _rating_steps(plans, secretaries, now: datetime, first_order: int) -> list[_Step]:
    """The branches' ratings of the sessions they attended, in the daytime of the day of the
    session or of the next three, through ``booking.feedback.rate`` (its own seed: the rest of the
    history stays as it was). Sessions that ended in the last days are not rated yet, so the 待评价
    prompt has something."""
    rng = random.Random(1997)
    steps: list[_Step] = []
    rated_stations: set[int] = set()  # every station's host has at least one rating to read
    for plan in plans:
        if plan.fate != "attended":
            continue
        rated = rng.random() < RATED_SHARE or plan.slot.station.id not in rated_stations
        (rating, comment), = rng.choices(FEEDBACK, weights=[FEEDBACK_WEIGHTS[r] for r, _ in FEEDBACK])
        ends_at = plan.slot.starts_at + timedelta(minutes=plan.slot.package.duration_minutes)
        day = clock.to_local(ends_at).date() + timedelta(days=rng.randint(0, 3))  # in the daytime, after the end
        at = max(clock.local_datetime(day, rng.randint(9, 21), rng.choice((5, 20, 35, 50))),
                 ends_at + timedelta(hours=1, minutes=rng.randint(0, 50)))
        if not rated or at >= now:
            continue
        rated_stations.add(plan.slot.station.id)
        steps.append(_Step(at, first_order + len(steps),
                           lambda plan=plan, secretary=secretaries[plan.organisation.id], rating=rating,
                           comment=comment: _rate(plan, secretary, rating, comment)))
    return steps


def _rate(plan: _BookingPlan, secretary: User, rating: int, comment: str) -> None:
    from blueprints.booking import feedback

    if not plan.booking_id:
        return
    try:
        feedback.rate(secretary, plan.booking_id, rating, comment)
    except feedback.FeedbackError:  # the group was not checked in after all
        db.session.rollback()
