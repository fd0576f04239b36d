"""Programme statistics for a period: bookings by category, station utilisation, attendance,
weekly trend and coverage of organisations.

Two SQL queries do the counting (one row per slot, one row per subdistrict) plus one for the
organisations not yet covered; everything else is arithmetic on those rows.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlalchemy as sa

from blueprints.accounts.models import Organisation
from blueprints.booking.models import Booking, BookingStatus
from blueprints.catalog.models import Category, Package, Slot, SlotStatus, Station
from blueprints.core import clock
from blueprints.core.clock import local_bounds, month_of, quarter_of, year_of  # noqa: F401 (stats' periods)
from blueprints.core.extensions import db

# A booking "counts" (the organisation booked a themed Party day) in these states.
COUNTED_STATUSES = (
    BookingStatus.PENDING,
    BookingStatus.CONFIRMED,
    BookingStatus.ATTENDED,
    BookingStatus.NO_SHOW,
)
UNCOVERED_LIMIT = 200


def default_period() -> tuple[date, date]:
    """The current quarter in Shanghai."""
    return quarter_of(clock.today())


@dataclass(frozen=True)
class StatsFilters:
    date_from: date
    date_to: date
    campaign_id: int | None = None
    station_id: int | None = None
    subdistrict: str = ""
    # None: every station (admins); a set: only these (hosts).
    station_ids: frozenset[int] | None = None


@dataclass
class CategoryRow:
    category: Category
    bookings: int = 0
    participants: int = 0
    attended_participants: int = 0


@dataclass
class StationRow:
    station_id: int
    name: str
    slots: int = 0
    capacity: int = 0
    booked: int = 0
    attended: int = 0

    @property
    def booked_rate(self) -> float:
        return self.booked / self.capacity if self.capacity else 0.0

    @property
    def attended_rate(self) -> float:
        return self.attended / self.capacity if self.capacity else 0.0


@dataclass
class WeekRow:
    week_start: date
    bookings: int = 0
    participants: int = 0


@dataclass
class Attendance:
    attended: int = 0
    no_show: int = 0
    awaiting: int = 0  # confirmed or pending, outcome not known yet

    @property
    def decided(self) -> int:
        return self.attended + self.no_show

    @property
    def attendance_rate(self) -> float | None:
        return self.attended / self.decided if self.decided else None

    @property
    def no_show_rate(self) -> float | None:
        return self.no_show / self.decided if self.decided else None


@dataclass
class CoverageRow:
    subdistrict: str
    organisations: int = 0
    covered: int = 0

    @property
    def uncovered(self) -> int:
        return self.organisations - self.covered

    @property
    def rate(self) -> float:
        return self.covered / self.organisations if self.organisations else 0.0


@dataclass
class Stats:
    filters: StatsFilters
    categories: list[CategoryRow]
    stations: list[StationRow]
    weeks: list[WeekRow]
    attendance: Attendance
    coverage: list[CoverageRow] = field(default_factory=list)
    uncovered: list[Organisation] = field(default_factory=list)
    uncovered_total: int = 0

    @property
    def total_bookings(self) -> int:
        return sum(r.bookings for r in self.categories)

    @property
    def total_participants(self) -> int:
        return sum(r.participants for r in self.categories)

    @property
    def total_capacity(self) -> int:
        return sum(r.capacity for r in self.stations)


def _slot_conditions(filters: StatsFilters) -> list:
    start, end = local_bounds(filters.date_from, filters.date_to)
    conditions = [Slot.starts_at >= start, Slot.starts_at < end]
    if filters.campaign_id:
        conditions.append(Package.campaign_id == filters.campaign_id)
    if filters.station_id:
        conditions.append(Slot.station_id == filters.station_id)
    if filters.station_ids is not None:
        conditions.append(Slot.station_id.in_(filters.station_ids or {-1}))
    return conditions


def _count_if(condition, value=1):
    return sa.func.coalesce(sa.func.sum(sa.case((condition, value), else_=0)), 0)


def compute(filters: StatsFilters, *, with_coverage: bool = True) -> Stats:
    counted = Booking.status.in_(COUNTED_STATUSES)
    attended = Booking.status == BookingStatus.ATTENDED
    attended_people = sa.func.coalesce(Booking.attended_headcount, Booking.headcount)
    now = clock.now()
    slot_conditions = _slot_conditions(filters)
    if filters.subdistrict:
        slot_conditions.append(Station.subdistrict == filters.subdistrict)

    per_slot = (
        sa.select(
            Booking.slot_id.label("slot_id"),
            _count_if(counted).label("bookings"),
            _count_if(counted, Booking.headcount).label("participants"),
            _count_if(attended).label("attended"),
            _count_if(attended, attended_people).label("attended_people"),
            # Counted as they stand now: an ended slot's unsettled confirmed groups did not come.
            _count_if(Booking.no_show_at(Slot.ends_at, now)).label("no_show"),
            _count_if(sa.or_(Booking.status == BookingStatus.PENDING, sa.and_(
                Booking.status == BookingStatus.CONFIRMED, Slot.ends_at > now))).label("awaiting"),
        )
        .join(Slot, Slot.id == Booking.slot_id)
        .join(Package, Package.id == Slot.package_id)
        .join(Station, Station.id == Slot.station_id)
        .where(*slot_conditions)
        .group_by(Booking.slot_id)
        .subquery()
    )
    rows = db.session.execute(
        sa.select(
            Slot.id, Slot.station_id, Station.name, Package.category, Slot.starts_at, Slot.capacity,
            Slot.status,
            sa.func.coalesce(per_slot.c.bookings, 0), sa.func.coalesce(per_slot.c.participants, 0),
            sa.func.coalesce(per_slot.c.attended, 0), sa.func.coalesce(per_slot.c.attended_people, 0),
            sa.func.coalesce(per_slot.c.no_show, 0), sa.func.coalesce(per_slot.c.awaiting, 0),
        )
        .join(Package, Package.id == Slot.package_id)
        .join(Station, Station.id == Slot.station_id)
        .outerjoin(per_slot, per_slot.c.slot_id == Slot.id)
        .where(*slot_conditions)
    ).all()

    categories = OrderedDict((c, CategoryRow(c)) for c in Category)
    stations: dict[int, StationRow] = {}
    weeks: dict[date, WeekRow] = {}
    week = filters.date_from - timedelta(days=filters.date_from.weekday())
    while week <= filters.date_to:
        weeks[week] = WeekRow(week)
        week += timedelta(days=7)
    attendance = Attendance()
    for (_sid, station_id, station_name, category, starts_at, capacity, status,
         bookings, participants, n_attended, attended_people_n, no_show, awaiting) in rows:
        cat = categories[category]
        cat.bookings += bookings
        cat.participants += participants
        cat.attended_participants += attended_people_n
        st = stations.setdefault(station_id, StationRow(station_id, station_name))
        if status is not SlotStatus.CANCELLED:
            st.slots += 1
            st.capacity += capacity
        st.booked += participants
        st.attended += attended_people_n
        day = clock.to_local(starts_at).date()
        wk = weeks.setdefault(day - timedelta(days=day.weekday()), WeekRow(day - timedelta(days=day.weekday())))
        wk.bookings += bookings
        wk.participants += participants
        attendance.attended += n_attended
        attendance.no_show += no_show
        attendance.awaiting += awaiting

    stats = Stats(
        filters=filters,
        categories=list(categories.values()),
        stations=sorted(stations.values(), key=lambda s: (-s.booked, s.name)),
        weeks=[weeks[k] for k in sorted(weeks)],
        attendance=attendance,
    )
    if with_coverage:
        _add_coverage(stats, filters)
    return stats


def _covered_ids_subquery(filters: StatsFilters):
    return (
        sa.select(Booking.organisation_id)
        .join(Slot, Slot.id == Booking.slot_id)
        .join(Package, Package.id == Slot.package_id)
        .where(Booking.status.in_(COUNTED_STATUSES), *_slot_conditions(filters))
    )


def _add_coverage(stats: Stats, filters: StatsFilters) -> None:
    covered_ids = _covered_ids_subquery(filters)
    is_covered = Organisation.id.in_(covered_ids)
    org_conditions = [Organisation.active.is_(True)]
    if filters.subdistrict:
        org_conditions.append(Organisation.subdistrict == filters.subdistrict)
    rows = db.session.execute(
        sa.select(Organisation.subdistrict, sa.func.count(Organisation.id), _count_if(is_covered))
        .where(*org_conditions)
        .group_by(Organisation.subdistrict)
        .order_by(Organisation.subdistrict)
    ).all()
    stats.coverage = [CoverageRow(sub or "", total, covered) for sub, total, covered in rows]
    stats.uncovered_total = sum(r.uncovered for r in stats.coverage)
    stats.uncovered = list(db.session.scalars(
        sa.select(Organisation)
        .where(*org_conditions, ~is_covered)
        .order_by(Organisation.subdistrict, Organisation.name)
        .limit(UNCOVERED_LIMIT)
    ))


def uncovered_all(filters: StatsFilters) -> list[Organisation]:
    """Every organisation not covered (for the spreadsheet)."""
    conditions = [Organisation.active.is_(True), ~Organisation.id.in_(_covered_ids_subquery(filters))]
    if filters.subdistrict:
        conditions.append(Organisation.subdistrict == filters.subdistrict)
    return list(db.session.scalars(
        sa.select(Organisation).where(*conditions).order_by(Organisation.subdistrict, Organisation.name)
    ))


# -- feedback after the day (issue 15, item 5) -------------------------------------------------

def _feedback_conditions(filters: StatsFilters) -> list:
    """The sessions a page's filters select (slot date, campaign, station, subdistrict, a host's stations)."""
    conditions = _slot_conditions(filters)
    if filters.subdistrict:
        conditions.append(Station.subdistrict == filters.subdistrict)
    return conditions


def feedback_summary(filters: StatsFilters, *, comments: int = 10):
    """Average rating and count per station and per package, and the latest comments, of the
    sessions of the period (``booking.feedback.rating_summary``: two queries)."""
    from blueprints.booking.feedback import rating_summary

    return rating_summary(*_feedback_conditions(filters), comments=comments)


def feedback_all(filters: StatsFilters):
    """Every rating of the period's sessions, newest first (for the spreadsheet)."""
    from blueprints.booking.feedback import all_comments

    return all_comments(*_feedback_conditions(filters))
