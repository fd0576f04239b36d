"""The date-first calendar (``/calendar``, ``/host/calendar``): which ISO week or month a request
asks for, and the slots of that period by day, as plain functions.

Which slots are open is the menu's rule (``queries._slot_conditions`` and the packages of
``queries._package_query``): the calendar is the menu's slots laid out by date. Every query is
bounded whatever the data size: one statement for the slots of the period (at most ``per_day``
of each day, with the day's total for "另有 X 个场次"), one for their places left.
"""
from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from babel.dates import format_skeleton
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy.orm import joinedload

from blueprints.booking.capacity import Availability, availability_for
from blueprints.catalog.models import Slot, Station
from blueprints.core import clock
from blueprints.core.extensions import db

from .queries import MenuFilters, _package_query, _slot_conditions

FIRST_YEAR, LAST_YEAR = 2000, 2099  # what the calendar can be asked for (and its links reach)
WEEK_DAY_LIMIT = 8  # slots one day shows in the week view before "另有 X 个场次"
MONTH_DAY_LIMIT = 3  # and in the month view

_WEEK = re.compile(r"(\d{4})-[Ww](\d{1,2})")
_MONTH = re.compile(r"(\d{4})-(\d{1,2})")


class PeriodError(ValueError):
    """A ``week`` or ``month`` argument that names no period the calendar shows."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Period:
    """An ISO week (Monday to Sunday) or a calendar month, in Shanghai dates."""

    kind: str  # "week" or "month"
    year: int
    number: int  # ISO week number or month

    @property
    def first(self) -> date:
        if self.kind == "week":
            return date.fromisocalendar(self.year, self.number, 1)
        return date(self.year, self.number, 1)

    @property
    def last(self) -> date:
        if self.kind == "week":
            return self.first + timedelta(days=6)
        return date(self.year, self.number, monthrange(self.year, self.number)[1])

    @property
    def value(self) -> str:
        """The URL argument's value: ``2026-W51`` or ``2026-12``."""
        return f"{self.year}-W{self.number:02d}" if self.kind == "week" else f"{self.year}-{self.number:02d}"

    @property
    def arg(self) -> dict[str, str]:
        return {self.kind: self.value}

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    @property
    def grid_days(self) -> list[date]:
        """The days of the grid: whole weeks, Monday first (a month starts and ends mid-week)."""
        start = self.first - timedelta(days=self.first.weekday())
        end = self.last + timedelta(days=6 - self.last.weekday())
        return [start + timedelta(days=n) for n in range((end - start).days + 1)]

    @property
    def starts_at(self) -> datetime:
        return clock.local_datetime(self.first, 0)

    @property
    def ends_at(self) -> datetime:
        return clock.local_datetime(self.last + timedelta(days=1), 0)

    def contains(self, day: date) -> bool:
        return self.first <= day <= self.last

    def label(self) -> str:
        """e.g. 2026年第51周（12月14日—12月20日）, or 2026年12月."""
        locale = _locale()
        if self.kind == "week":
            return _("Week %(week)s of %(year)s (%(first)s – %(last)s)", year=self.year, week=self.number,
                     first=format_skeleton("MMMd", self.first, locale=locale),
                     last=format_skeleton("MMMd", self.last, locale=locale))
        return format_skeleton("yMMMM", self.first, locale=locale)

    def previous(self) -> Period | None:
        if self.kind == "week":
            day = self.first - timedelta(days=7)
            iso = day.isocalendar()
            return Period("week", iso.year, iso.week) if iso.year >= FIRST_YEAR else None
        if self.number == 1:
            return Period("month", self.year - 1, 12) if self.year > FIRST_YEAR else None
        return Period("month", self.year, self.number - 1)

    def next(self) -> Period | None:
        if self.kind == "week":
            day = self.first + timedelta(days=7)
            iso = day.isocalendar()
            return Period("week", iso.year, iso.week) if iso.year <= LAST_YEAR else None
        if self.number == 12:
            return Period("month", self.year + 1, 1) if self.year < LAST_YEAR else None
        return Period("month", self.year, self.number + 1)

    def other_view(self, today: date) -> Period:
        """The month of this week, or the week of this month: the current one if it holds today,
        else the week of a month's first day, the month of a week's Thursday (ISO's own rule)."""
        if self.kind == "week":
            if self.contains(today):
                return month_of(today)
            return month_of(self.first + timedelta(days=3))
        return week_of(today if self.contains(today) else self.first)


def _locale() -> str:
    return str(get_locale() or "zh_CN")


def week_of(day: date) -> Period:
    iso = day.isocalendar()
    return Period("week", iso.year, iso.week)


def month_of(day: date) -> Period:
    return Period("month", day.year, day.month)


def parse_period(week: str = "", month: str = "", today: date | None = None) -> Period:
    """The period a request asks for: ``week=2026-W51`` (ISO week) or ``month=2026-12``; neither:
    the week of ``today`` (Shanghai). Anything else raises :class:`PeriodError` with the message
    for the field."""
    week, month = (week or "").strip(), (month or "").strip()
    if week and month:
        raise PeriodError(_("Choose a week or a month, not both."), "week")
    if week:
        found = _WEEK.fullmatch(week)
        if not found:
            raise PeriodError(_("Write the week as year-W and its number, for example 2026-W51."), "week")
        year, number = int(found.group(1)), int(found.group(2))
        _check_year(year, "week")
        weeks = date(year, 12, 28).isocalendar().week  # 52 or 53: 28 December is always in the last week
        if not 1 <= number <= weeks:
            raise PeriodError(_("%(year)s has weeks 1 to %(weeks)s; there is no week %(week)s.",
                                year=year, weeks=weeks, week=number), "week")
        return Period("week", year, number)
    if month:
        found = _MONTH.fullmatch(month)
        if not found:
            raise PeriodError(_("Write the month as year-month, for example 2026-12."), "month")
        year, number = int(found.group(1)), int(found.group(2))
        _check_year(year, "month")
        if not 1 <= number <= 12:
            raise PeriodError(_("A month is 1 to 12; there is no month %(month)s.", month=number), "month")
        return Period("month", year, number)
    return week_of(today or clock.today())


def _check_year(year: int, name: str) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise PeriodError(_("The calendar covers the years %(first)s to %(last)s.", first=FIRST_YEAR,
                            last=LAST_YEAR), name)


# -- the slots of a period, by day ---------------------------------------------------------------

@dataclass
class Day:
    day: date
    in_period: bool = True
    slots: list = field(default_factory=list)  # Slot, or the host's SlotLine
    total: int = 0  # slots of the day that match, shown or not

    @property
    def hidden(self) -> int:
        return self.total - len(self.slots)

    @property
    def week(self) -> Period:
        return week_of(self.day)

    def label(self) -> str:
        """e.g. 12月14日周一 / Mon, Dec 14."""
        return format_skeleton("MMMEd", self.day, locale=_locale())

    def weekday(self) -> str:
        """e.g. 周一 / Mon."""
        return format_skeleton("E", self.day, locale=_locale())


@dataclass
class CalendarView:
    period: Period
    days: list[Day]
    availability: dict[int, Availability] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(day.total for day in self.days)

    @property
    def shown_starts(self) -> list[datetime]:
        return [getattr(s, "slot", s).starts_at for day in self.days for s in day.slots]


def _day_expression(column, period: Period):
    """Which day of the period (0, 1, …) a start time falls on in Shanghai, in portable SQL: a CASE
    over the days' boundaries (no time-zone functions, which differ between SQLite and PostgreSQL)."""
    bounds = [clock.local_datetime(day + timedelta(days=1), 0) for day in period.days]
    return sa.case(*[(column < bound, index) for index, bound in enumerate(bounds)], else_=len(bounds))


def slots_by_day(period: Period, conditions: list, per_day: int) -> list[tuple[Slot, int, int]]:
    """(slot, day index, the day's total) of the first ``per_day`` slots of each day that meet
    ``conditions`` (over slots and stations), with package and station: one statement."""
    day = _day_expression(Slot.starts_at, period)
    base = (
        sa.select(Slot.id.label("slot_id"), Slot.starts_at.label("starts_at"), day.label("day"))
        .join(Station, Station.id == Slot.station_id)
        .where(Slot.starts_at >= period.starts_at, Slot.starts_at < period.ends_at, *conditions)
        .subquery()
    )
    ranked = sa.select(
        base.c.slot_id, base.c.day,
        sa.func.row_number().over(partition_by=base.c.day, order_by=(base.c.starts_at, base.c.slot_id)).label("rank"),
        sa.func.count().over(partition_by=base.c.day).label("total"),
    ).subquery()
    rows = db.session.execute(
        sa.select(Slot, ranked.c.day, ranked.c.total)
        .join(ranked, ranked.c.slot_id == Slot.id)
        .where(ranked.c.rank <= per_day)
        .options(joinedload(Slot.package), joinedload(Slot.station))
        .order_by(Slot.starts_at, Slot.id)
    ).all()
    return [(slot, int(index), int(total)) for slot, index, total in rows]


def days_of(period: Period, rows, item=lambda slot: slot) -> list[Day]:
    days = {day: Day(day, period.contains(day)) for day in period.grid_days}
    for slot, index, total in rows:
        cell = days[period.first + timedelta(days=index)]
        cell.slots.append(item(slot))
        cell.total = total
    return list(days.values())


def open_slots(period: Period, filters: MenuFilters, per_day: int | None = None) -> CalendarView:
    """The open slots of ``period`` that the menu would list under ``filters`` (category, station,
    subdistrict, campaign), by day, with their places left: two statements."""
    per_day = per_day or (WEEK_DAY_LIMIT if period.kind == "week" else MONTH_DAY_LIMIT)
    in_period = MenuFilters(station_id=filters.station_id, subdistrict=filters.subdistrict,
                            date_from=period.first, date_to=period.last)
    packages = _package_query(MenuFilters(category=filters.category, campaign_id=filters.campaign_id)).subquery()
    conditions = [*_slot_conditions(in_period, False), Slot.package_id.in_(sa.select(packages.c.id))]
    rows = slots_by_day(period, conditions, per_day)
    return CalendarView(period, days_of(period, rows), availability_for(slot.id for slot, _, _ in rows))
