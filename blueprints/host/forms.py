import re
from datetime import time

from flask_babel import lazy_gettext as _l
from wtforms import (BooleanField, Field, RadioField, SelectField, SelectMultipleField,
                     StringField, TextAreaField, TimeField)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from blueprints.core.forms import BaseForm, DateField, WholeNumberField
from blueprints.core.params import parse_int

from . import recurrence

WEEKDAY_LABELS = [_l("Monday"), _l("Tuesday"), _l("Wednesday"), _l("Thursday"), _l("Friday"),
                  _l("Saturday"), _l("Sunday")]
WEEKDAY_CHOICES = [SelectChoice(i, label) for i, label in enumerate(WEEKDAY_LABELS)]
TIME_LIST = re.compile(r"^([01]?\d|2[0-3])[:：]([0-5]\d)$")


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def parse_times(text: str) -> tuple[time, ...]:
    """'09:00, 14:30' → (time(9), time(14, 30)); ValueError on anything else."""
    parts = [p.strip() for p in re.split(r"[,，、;；\s]+", text or "") if p.strip()]
    result = []
    for part in parts:
        match = TIME_LIST.match(part)
        if not match:
            raise ValueError(part)
        result.append(time(int(match.group(1)), int(match.group(2))))
    return tuple(result)


class _SlotPlaceMixin:
    def set_choices(self, stations, packages):
        self.station.choices = [SelectChoice(s.id, s.name) for s in stations]
        seen = {}
        for _sid, package in packages:
            seen.setdefault(package.id, package)
        self.package.choices = [SelectChoice(p.id, f"{p.category.label} · {p.title}") for p in seen.values()]


class SlotForm(_SlotPlaceMixin, BaseForm):
    station = SelectField(_l("Station"), coerce=int)
    package = SelectField(_l("Package"), coerce=int)
    day = DateField(_l("Date"), validators=[InputRequired(_l("Please give a date."))])
    start = TimeField(_l("Starts at"), validators=[InputRequired(_l("Please give a start time."))])
    end = TimeField(_l("Ends at"), validators=[InputRequired(_l("Please give an end time."))])
    capacity = WholeNumberField(_l("Capacity (people)"), validators=[
        InputRequired(_l("Please give the capacity.")), NumberRange(min=1, max=10000, message=_l("Between 1 and 10000."))])
    max_groups = WholeNumberField(_l("Group limit"), validators=[Optional(), NumberRange(min=1, max=1000, message=_l("Between 1 and 1000."))])
    note = StringField(_l("Note"), validators=[Optional(), Length(max=300)])


class EditSlotForm(BaseForm):
    day = DateField(_l("Date"), validators=[InputRequired(_l("Please give a date."))])
    start = TimeField(_l("Starts at"), validators=[InputRequired(_l("Please give a start time."))])
    end = TimeField(_l("Ends at"), validators=[InputRequired(_l("Please give an end time."))])
    capacity = WholeNumberField(_l("Capacity (people)"), validators=[
        InputRequired(_l("Please give the capacity.")), NumberRange(min=1, max=10000, message=_l("Between 1 and 10000."))])
    max_groups = WholeNumberField(_l("Group limit"), validators=[Optional(), NumberRange(min=1, max=1000, message=_l("Between 1 and 1000."))])
    note = StringField(_l("Note"), validators=[Optional(), Length(max=300)])


class CapacityForm(BaseForm):
    capacity = WholeNumberField(_l("Capacity (people)"), validators=[
        InputRequired(_l("Please give the capacity.")), NumberRange(min=1, max=10000, message=_l("Between 1 and 10000."))])


class ReasonForm(BaseForm):
    reason = TextAreaField(_l("Reason"), validators=[
        InputRequired(_l("Please give the branches a reason.")), Length(max=300)])


class DeclineForm(BaseForm):
    reason = StringField(_l("Reason for declining"), validators=[
        InputRequired(_l("Please give the branch a reason.")), Length(max=500)])


class IdListField(Field):
    """A repeated field of record ids (checkboxes of one name): a list of ints. Anything that is
    not an id (``parse_int``: ASCII digits only) makes the whole field invalid, with one message."""

    def process_formdata(self, valuelist):
        ids = [parse_int(value) for value in valuelist]
        if any(value is None for value in ids):
            self.data = []
            raise ValueError(_l("The selection holds something that is not a booking number. Please select the "
                                "bookings again."))
        self.data = ids

    def _value(self):
        return ""


class BulkDecisionForm(BaseForm):
    """``POST /host/approvals/bulk``: ``booking_ids`` (repeated), ``action`` (approve or decline, the
    button pressed), ``reason`` (a decline's, told to every branch). The input rules are the
    domain's (``services.bulk_problem``), shown at their fields."""

    booking_ids = IdListField(_l("Selected bookings"), default=list)
    action = StringField(_l("Decision"))
    reason = StringField(_l("Reason for declining the selected bookings"), validators=[Optional(), Length(max=500)])

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        if self.booking_ids.errors:
            return False
        from .services import bulk_problem

        problem = bulk_problem(self.booking_ids.data or [], self.action.data or "", self.reason.data or "")
        if problem is not None:
            field = self[problem.field] if problem.field in self else None
            if field is not None:
                field.errors = list(field.errors) + [problem.message]
            else:
                self.form_errors.append(problem.message)
            return False
        return valid


class CheckInForm(BaseForm):
    attended_headcount = WholeNumberField(_l("People who came"), validators=[
        InputRequired(_l("Please give the number of people who came.")), NumberRange(min=0, max=10000)])


class SeriesForm(_SlotPlaceMixin, BaseForm):
    station = SelectField(_l("Station"), coerce=int)
    package = SelectField(_l("Package"), coerce=int)
    kind = RadioField(_l("Repeats"), default=recurrence.WEEKLY, choices=[
        SelectChoice(recurrence.WEEKLY, _l("Weekly on the chosen weekdays")),
        SelectChoice(recurrence.MONTHLY, _l("Monthly on a chosen week and weekday")),
        SelectChoice(recurrence.QUARTERLY, _l("In the third month of every quarter (chosen week and weekday)")),
    ])
    weekdays = MultiCheckboxField(_l("Weekdays (weekly)"), coerce=int,
                                  choices=WEEKDAY_CHOICES, validators=[Optional()])
    week_of_month = SelectField(_l("Week of the month"), coerce=int, default=1, choices=[
        SelectChoice(1, _l("First")), SelectChoice(2, _l("Second")), SelectChoice(3, _l("Third")),
        SelectChoice(4, _l("Fourth")), SelectChoice(-1, _l("Last"))])
    weekday = SelectField(_l("Weekday (monthly)"), coerce=int, choices=WEEKDAY_CHOICES)
    first_day = DateField(_l("From"), validators=[InputRequired(_l("Please give a date."))])
    last_day = DateField(_l("Until"), validators=[InputRequired(_l("Please give a date."))])
    times = StringField(_l("Start times"), default="09:00",
                        validators=[InputRequired(_l("Please give at least one start time, e.g. 09:00, 14:00."))])
    duration_minutes = WholeNumberField(_l("Duration (minutes)"), default=120, validators=[
        InputRequired(_l("Please give the duration.")), NumberRange(min=15, max=720, message=_l("Between 15 and 720 minutes."))])
    capacity = WholeNumberField(_l("Capacity (people)"), validators=[
        InputRequired(_l("Please give the capacity.")), NumberRange(min=1, max=10000, message=_l("Between 1 and 10000."))])
    max_groups = WholeNumberField(_l("Group limit"), validators=[Optional(), NumberRange(min=1, max=1000, message=_l("Between 1 and 1000."))])
    keep_holidays = BooleanField(_l("Also on public holidays"))
    note = StringField(_l("Note"), validators=[Optional(), Length(max=300)])

    # The fields of each pattern; the page shows only the chosen pattern's (series_new.html).
    PATTERN_FIELDS = {
        recurrence.WEEKLY: ("weekdays",),
        recurrence.MONTHLY: ("week_of_month", "weekday"),
        recurrence.QUARTERLY: ("week_of_month", "weekday"),
    }

    def hidden_fields(self) -> tuple[str, ...]:
        """The fields of the patterns not chosen: not shown, so not checked and not used."""
        shown = self.PATTERN_FIELDS.get(self.kind.data)
        if shown is None:
            return ()
        return tuple(name for names in self.PATTERN_FIELDS.values() for name in names if name not in shown)

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        hidden = self.hidden_fields()
        for name in hidden:
            self[name].errors = []
        if not valid and hidden:
            valid = not self.form_errors and not any(field.errors for field in self)
        return valid

    def validate_times(self, field):
        try:
            self.parsed_times = parse_times(field.data)
        except ValueError:
            raise ValidationError(_l("Write times as HH:MM separated by commas, e.g. 09:00, 14:00.")) from None
        if not self.parsed_times:
            raise ValidationError(_l("Please give at least one start time, e.g. 09:00, 14:00."))

    def validate_weekdays(self, field):
        if self.kind.data == recurrence.WEEKLY and not field.data:
            raise ValidationError(_l("Please choose at least one weekday."))

    def validate_last_day(self, field):
        if field.data and self.first_day.data and field.data < self.first_day.data:
            raise ValidationError(_l("The end date is before the start date."))

    def rule(self) -> recurrence.Rule:
        return recurrence.Rule(
            kind=self.kind.data, first_day=self.first_day.data, last_day=self.last_day.data,
            times=self.parsed_times, duration_minutes=self.duration_minutes.data,
            weekdays=tuple(self.weekdays.data or ()), week_of_month=self.week_of_month.data or 1,
            weekday=self.weekday.data if self.weekday.data is not None else 0,
            keep_holidays=bool(self.keep_holidays.data),
        )
