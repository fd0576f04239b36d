"""Recurring slot rules: which dates a rule produces, with Chinese public holidays skipped.

Pure functions over dates; no database. Holidays come from the maintained ``holidays`` package,
whose China calendar knows the official schedule: the holidays themselves, the moved days off
(调休放假) and the weekend days that become working days (调休上班, ``weekend_workdays``).
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

import holidays
from flask_babel import gettext as _

from blueprints.core import clock

WEEKLY = "weekly"
MONTHLY = "monthly"
QUARTERLY = "quarterly"  # the chosen week and weekday of the third month of every quarter
KINDS = (WEEKLY, MONTHLY, QUARTERLY)
LAST_WEEK = -1
MAX_OCCURRENCES = 200
MAX_SPAN_DAYS = 366 * 2


@lru_cache(maxsize=32)
def _china(year: int, language: str = "zh_CN"):
    return holidays.country_holidays("CN", years=[year], language=language)


def holiday_name(day: date, language: str = "zh_CN") -> str | None:
    """The holiday (or moved day off) on ``day``, or None on an ordinary day."""
    return _china(day.year, language).get(day)


def is_adjusted_workday(day: date) -> bool:
    """A Saturday or Sunday that the official schedule makes a working day (调休上班)."""
    return day in _china(day.year).weekend_workdays


@dataclass(frozen=True)
class Rule:
    kind: str
    first_day: date
    last_day: date
    times: tuple[time, ...]
    duration_minutes: int
    weekdays: tuple[int, ...] = ()  # weekly: Monday=0 … Sunday=6
    week_of_month: int = 1  # monthly/quarterly: 1-4, or -1 for the last
    weekday: int = 0  # monthly/quarterly
    keep_holidays: bool = False


@dataclass
class Occurrence:
    day: date
    starts_at: datetime  # aware, UTC
    ends_at: datetime
    holiday: str | None = None
    adjusted_workday: bool = False
    skipped: bool = False
    notes: list[str] = field(default_factory=list)


class RuleError(ValueError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def nth_weekday(year: int, month: int, week: int, weekday: int) -> date | None:
    """The ``week``-th ``weekday`` of the month (week -1: the last one), or None if there is none."""
    days = [d for d in calendar.Calendar().itermonthdates(year, month)
            if d.month == month and d.weekday() == weekday]
    if week == LAST_WEEK:
        return days[-1]
    return days[week - 1] if 1 <= week <= len(days) else None


def _months(first: date, last: date):
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        yield year, month
        month += 1
        if month > 12:
            year, month = year + 1, 1


def rule_days(rule: Rule) -> list[date]:
    """The dates the rule asks for, before holidays are considered."""
    if rule.kind == WEEKLY:
        wanted = set(rule.weekdays)
        span = (rule.last_day - rule.first_day).days
        return [d for d in (rule.first_day + timedelta(days=i) for i in range(span + 1)) if d.weekday() in wanted]
    days = []
    for year, month in _months(rule.first_day, rule.last_day):
        if rule.kind == QUARTERLY and month % 3 != 0:
            continue
        day = nth_weekday(year, month, rule.week_of_month, rule.weekday)
        if day and rule.first_day <= day <= rule.last_day:
            days.append(day)
    return days


def validate(rule: Rule) -> None:
    if rule.kind not in KINDS:
        raise RuleError(_("Please choose how the slots repeat."), "kind")
    if rule.last_day < rule.first_day:
        raise RuleError(_("The end date is before the start date."), "last_day")
    if (rule.last_day - rule.first_day).days > MAX_SPAN_DAYS:
        raise RuleError(_("A series can span at most two years."), "last_day")
    if rule.kind == WEEKLY and not rule.weekdays:
        raise RuleError(_("Please choose at least one weekday."), "weekdays")
    if not rule.times:
        raise RuleError(_("Please give at least one start time, e.g. 09:00, 14:00."), "times")
    if rule.duration_minutes <= 0:
        raise RuleError(_("The duration must be at least one minute."), "duration_minutes")


def occurrences(rule: Rule, language: str = "zh_CN") -> list[Occurrence]:
    """Every occurrence of the rule, Shanghai wall-clock times turned into UTC, holidays marked
    (and ``skipped`` unless the rule keeps holidays), in time order."""
    validate(rule)
    result = []
    for day in rule_days(rule):
        name = holiday_name(day, language)
        adjusted = is_adjusted_workday(day)
        for start in sorted(set(rule.times)):
            local_start = clock.local_datetime(day, start.hour, start.minute)
            starts_at = local_start.astimezone(timezone.utc)
            result.append(Occurrence(
                day=day,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(minutes=rule.duration_minutes),
                holiday=name,
                adjusted_workday=adjusted,
                skipped=bool(name) and not rule.keep_holidays,
            ))
    return result


def kept(occurrences_: list[Occurrence]) -> list[Occurrence]:
    return [o for o in occurrences_ if not o.skipped]
