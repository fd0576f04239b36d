"""Forms of catalogue management. They only parse input; the rules live in services.py."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (BooleanField, SelectField, SelectMultipleField, StringField,
                     TextAreaField)
from wtforms.fields.choices import SelectChoice as C
from wtforms.validators import Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from blueprints.booking.models import BookingStatus
from blueprints.catalog.models import Category
from blueprints.core.forms import BaseForm, DateField, WholeNumberField
from blueprints.core.params import optional_id
from blueprints.quotas.models import QuotaPeriod

from .audit import BOOKING_ACTIONS, SLOT_ACTIONS

PERIOD_LABELS = {
    QuotaPeriod.MONTH: _l("per month"),
    QuotaPeriod.QUARTER: _l("per quarter"),
    QuotaPeriod.YEAR: _l("per year"),
}
STATUS_CHOICES = [C("", _l("Active and inactive")), C("active", _l("Active only")), C("inactive", _l("Inactive only"))]


def db_id(value):
    """An id a database column can hold; anything else is an invalid choice (no query with it)."""
    if value in (None, ""):
        raise ValueError(value)
    return optional_id(value)


optional_int = optional_id  # "" is no choice


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def category_choices(blank=None):
    choices = [C(c.value, c.label) for c in Category]
    return [C("", blank)] + choices if blank else choices


class StationForm(BaseForm):
    name = StringField(_l("Name"))
    address = StringField(_l("Address"))
    subdistrict = StringField(_l("Subdistrict or town"))
    phone = StringField(_l("Phone"))
    speciality = StringField(_l("Speciality"))
    description = TextAreaField(_l("Description"))
    requires_approval = BooleanField(_l("Bookings need the host's approval"))
    booking_cutoff_hours = WholeNumberField(_l("Booking closes (hours before the start)"), validators=[Optional()])
    cancel_deadline_hours = WholeNumberField(_l("Cancellation deadline (hours before the start)"), validators=[Optional()])
    active = BooleanField(_l("Active (branches can book here)"))
    hosts = MultiCheckboxField(_l("Hosts"), coerce=db_id, validate_choice=False)

    def set_choices(self, hosts):
        self.hosts.choices = [C(h.id, f"{h.display_name}（{h.username}）" + ("" if h.active else " ✕"))
                              for h in hosts]


class CampaignForm(BaseForm):
    name = StringField(_l("Name"))
    starts_on = DateField(_l("First day"), validators=[Optional()])
    ends_on = DateField(_l("Last day"), validators=[Optional()])
    description = TextAreaField(_l("Description"))
    active = BooleanField(_l("Active (shown on the menu)"))


class PackageForm(BaseForm):
    category = SelectField(_l("Category"), validate_choice=False)
    title = StringField(_l("Title"))
    summary = StringField(_l("Summary"))
    description = TextAreaField(_l("Description"))
    duration_minutes = WholeNumberField(_l("Duration (minutes)"), validators=[Optional()])
    min_group_size = WholeNumberField(_l("Smallest group (people)"), validators=[Optional()])
    max_group_size = WholeNumberField(_l("Largest group (people)"), validators=[Optional()])
    campaign = SelectField(_l("Campaign"), coerce=optional_int, validate_choice=False)
    stations = MultiCheckboxField(_l("Offered at these stations"), coerce=db_id, validate_choice=False)
    active = BooleanField(_l("Active (shown on the menu)"))

    def set_choices(self, campaigns, stations):
        self.category.choices = category_choices(blank=_l("Choose…"))
        self.campaign.choices = [C("", _l("No campaign"))] + [C(c.id, c.name) for c in campaigns]
        self.stations.choices = [
            C(s.id, f"{s.name}" + (f" · {s.subdistrict}" if s.subdistrict else "") + ("" if s.active else " ✕"))
            for s in stations]


class QuotaForm(BaseForm):
    organisation = StringField(_l("Organisation"))
    category = SelectField(_l("Category"), validate_choice=False)
    period = SelectField(_l("Period"), validate_choice=False)
    max_bookings = WholeNumberField(_l("At most this many bookings"), validators=[Optional()])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.category.choices = category_choices(blank=_l("Choose…"))
        self.period.choices = [C("", _l("Choose…"))] + [C(p.value, PERIOD_LABELS[p]) for p in QuotaPeriod]


class ActiveForm(BaseForm):
    """The toggle in a list row: ``active`` is 1 or 0."""

    active = SelectField(_l("Active"), choices=[C("1", _l("Active")), C("0", _l("Inactive"))])


# -- GET filter forms (no CSRF: they change nothing and the URL can be shared) --------------------

class _Filter(BaseForm):
    class Meta:
        csrf = False


class StationFilterForm(_Filter):
    q = StringField(_l("Search"), validators=[Optional()])
    status = SelectField(_l("Status"), choices=STATUS_CHOICES, validators=[Optional()])


class PackageFilterForm(_Filter):
    q = StringField(_l("Search"), validators=[Optional()])
    category = SelectField(_l("Category"), validators=[Optional()])
    campaign = SelectField(_l("Campaign"), coerce=optional_int, validators=[Optional()])
    status = SelectField(_l("Status"), choices=STATUS_CHOICES, validators=[Optional()])

    def set_choices(self, campaigns):
        self.category.choices = category_choices(blank=_l("All categories"))
        self.campaign.choices = [C("", _l("All campaigns"))] + [C(c.id, c.name) for c in campaigns]


class QuotaFilterForm(_Filter):
    q = StringField(_l("Organisation"), validators=[Optional()])
    category = SelectField(_l("Category"), validators=[Optional()])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.category.choices = category_choices(blank=_l("All categories"))


class AuditFilterForm(_Filter):
    who = StringField(_l("Who (account or name)"), validators=[Optional()])
    what = SelectField(_l("What"), validators=[Optional()])
    status = SelectField(_l("Booking status after the change"), validators=[Optional()])
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("Until"), validators=[Optional()])
    station = SelectField(_l("Station"), coerce=optional_int, validators=[Optional()])
    organisation = StringField(_l("Organisation (name contains)"), validators=[Optional()])

    def set_choices(self, stations):
        bookings, slots = _l("Bookings"), _l("Slots")
        self.what.choices = (
            [C("", _l("Everything")), C("booking:", _l("Every booking event"))]
            + [C(f"booking:{key}", f"{bookings} · {label}") for key, label in BOOKING_ACTIONS.items()]
            + [C("slot:", _l("Every slot event"))]
            + [C(f"slot:{key}", f"{slots} · {label}") for key, label in SLOT_ACTIONS.items()]
        )
        self.status.choices = [C("", _l("Any"))] + [C(s.value, s.label) for s in BookingStatus]
        self.station.choices = [C("", _l("All stations"))] + [C(s.id, s.name) for s in stations]

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("The end date is before the start date."))
