"""Recurring slot rules: weekdays, month and quarter rules, holidays, moved working days, time zone."""
from datetime import date, datetime, time, timezone

import pytest

from blueprints.host import recurrence
from blueprints.host.recurrence import MONTHLY, QUARTERLY, WEEKLY, Rule


def rule(**params):
    defaults = dict(kind=WEEKLY, first_day=date(2026, 9, 28), last_day=date(2026, 10, 11),
                    times=(time(9, 0),), duration_minutes=120, weekdays=(0, 1, 2, 3, 4, 5, 6))
    defaults.update(params)
    return Rule(**defaults)


def test_weekly_rule_gives_the_chosen_weekdays_only():
    days = recurrence.rule_days(rule(weekdays=(1, 3), first_day=date(2026, 11, 1), last_day=date(2026, 11, 30)))
    assert days == [date(2026, 11, d) for d in (3, 5, 10, 12, 17, 19, 24, 26)]


def test_national_day_week_is_skipped_including_the_moved_day_off():
    occurrences = recurrence.occurrences(rule())
    skipped = {o.day for o in occurrences if o.skipped}
    # 1–3 Oct National Day, 5 Oct observed, 6 Oct the day off moved from Sunday 20 Sep.
    assert {date(2026, 10, d) for d in (1, 2, 3, 5, 6)} <= skipped
    assert date(2026, 9, 30) not in skipped and date(2026, 10, 9) not in skipped
    moved = next(o for o in occurrences if o.day == date(2026, 10, 6))
    assert "调休" in moved.holiday


def test_adjusted_working_day_is_marked_and_kept():
    # Saturday 10 Oct 2026 is an official working day (调休上班).
    occurrences = recurrence.occurrences(rule(weekdays=(5,), first_day=date(2026, 10, 1), last_day=date(2026, 10, 31)))
    saturday = next(o for o in occurrences if o.day == date(2026, 10, 10))
    assert saturday.adjusted_workday and not saturday.skipped
    assert recurrence.is_adjusted_workday(date(2026, 9, 20))
    assert not recurrence.is_adjusted_workday(date(2026, 10, 17))


def test_keep_holidays_marks_but_does_not_skip():
    occurrences = recurrence.occurrences(rule(keep_holidays=True))
    national_day = next(o for o in occurrences if o.day == date(2026, 10, 1))
    assert national_day.holiday and not national_day.skipped
    assert len(recurrence.kept(occurrences)) == len(occurrences)


def test_monthly_rule_on_the_last_friday():
    days = recurrence.rule_days(rule(kind=MONTHLY, week_of_month=-1, weekday=4,
                                     first_day=date(2026, 1, 1), last_day=date(2026, 4, 30)))
    assert days == [date(2026, 1, 30), date(2026, 2, 27), date(2026, 3, 27), date(2026, 4, 24)]


def test_quarter_rule_uses_the_third_month_of_every_quarter():
    days = recurrence.rule_days(rule(kind=QUARTERLY, week_of_month=2, weekday=5,
                                     first_day=date(2026, 1, 1), last_day=date(2026, 12, 31)))
    assert [d.month for d in days] == [3, 6, 9, 12]
    assert days[0] == date(2026, 3, 14) and all(d.weekday() == 5 for d in days)


def test_fifth_week_that_does_not_exist_is_left_out():
    assert recurrence.nth_weekday(2026, 2, 5, 0) is None


def test_shanghai_wall_clock_becomes_utc():
    occurrences = recurrence.occurrences(rule(weekdays=(0,), first_day=date(2026, 11, 23), last_day=date(2026, 11, 23),
                                              times=(time(9, 0), time(14, 30)), duration_minutes=90))
    assert [o.starts_at for o in occurrences] == [
        datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc), datetime(2026, 11, 23, 6, 30, tzinfo=timezone.utc)]
    assert occurrences[0].ends_at == datetime(2026, 11, 23, 2, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("params,field", [
    (dict(weekdays=()), "weekdays"),
    (dict(times=()), "times"),
    (dict(last_day=date(2026, 9, 1)), "last_day"),
    (dict(last_day=date(2029, 1, 1)), "last_day"),
])
def test_invalid_rules_are_refused_with_the_field(params, field):
    with pytest.raises(recurrence.RuleError) as error:
        recurrence.occurrences(rule(**params))
    assert error.value.field == field and error.value.message
