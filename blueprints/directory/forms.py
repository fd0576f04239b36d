"""Forms of the directory (organisations and accounts)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import BooleanField, HiddenField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from blueprints.accounts.models import ORGANISATION_KIND_LABELS, ROLE_LABELS, OrganisationKind, Role
from blueprints.core.forms import BaseForm, WholeNumberField

PHONE_PATTERN = r"^(\+?[0-9][0-9\- ]{5,18}[0-9])?$"
USERNAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"


def _kind_choices(blank=None):
    choices = [(k.value, ORGANISATION_KIND_LABELS[k]) for k in OrganisationKind]
    return ([("", blank)] if blank else []) + choices


def _status_choices():
    return [("active", _l("Active")), ("inactive", _l("Deactivated")), ("all", _l("All"))]


class OrganisationFilterForm(BaseForm):
    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[Optional(), Length(max=100)])
    kind = SelectField(_l("Kind"), validators=[Optional()])
    subdistrict = SelectField(_l("Subdistrict or town"), validators=[Optional()])
    parent = SelectField(_l("Parent organisation"), validators=[Optional()])
    status = SelectField(_l("Status"), default="active", validators=[Optional()])

    def __init__(self, *args, subdistricts=(), parents=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.status.choices = _status_choices()
        self.kind.choices = _kind_choices(blank=_l("All kinds"))
        self.subdistrict.choices = [("", _l("All subdistricts"))] + [(s, s) for s in subdistricts]
        self.parent.choices = [("", _l("Any parent"))] + [(str(i), n) for i, n in parents]


class OrganisationForm(BaseForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    kind = SelectField(_l("Kind"), validators=[DataRequired()])
    parent = StringField(_l("Parent organisation"), validators=[Optional(), Length(max=120)])
    subdistrict = StringField(_l("Subdistrict or town"), validators=[Optional(), Length(max=60)])
    member_count = WholeNumberField(_l("Party members"), default=0,
                                validators=[InputRequired(message=_l("Enter a whole number.")),
                                            NumberRange(min=0, max=1_000_000)])
    secretary_name = StringField(_l("Secretary's name"), validators=[Optional(), Length(max=60)])
    secretary_phone = StringField(_l("Secretary's phone"), validators=[
        Optional(), Length(max=20), Regexp(PHONE_PATTERN, message=_l("Enter a phone number."))])
    active = BooleanField(_l("Active (can book)"), default=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind.choices = _kind_choices()


class ImportUploadForm(BaseForm):
    file = FileField(_l("Spreadsheet (CSV or XLSX)"))


class ImportConfirmForm(BaseForm):
    rows = HiddenField()
    invite_secretaries = BooleanField(_l("Create accounts for the secretaries who have none yet"))


class AccountFilterForm(BaseForm):
    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[Optional(), Length(max=100)])
    role = SelectField(_l("Role"), validators=[Optional()])
    status = SelectField(_l("Status"), default="active", validators=[Optional()])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.status.choices = _status_choices()
        self.role.choices = [("", _l("All roles"))] + [(r.value, ROLE_LABELS[r]) for r in Role]


class AccountForm(BaseForm):
    username = StringField(_l("Username"), validators=[
        DataRequired(), Length(min=2, max=60),
        Regexp(USERNAME_PATTERN, message=_l("Use letters, digits, dots, hyphens and underscores."))])
    display_name = StringField(_l("Name shown"), validators=[DataRequired(), Length(max=60)])
    role = SelectField(_l("Role"), validators=[DataRequired()])
    organisation = StringField(_l("Organisation (branch secretaries)"), validators=[Optional(), Length(max=120)])
    stations = SelectMultipleField(_l("Stations (station hosts)"), coerce=int, validators=[Optional()])
    phone = StringField(_l("Phone"), validators=[
        Optional(), Length(max=20), Regexp(PHONE_PATTERN, message=_l("Enter a phone number."))])
    email = StringField(_l("E-mail"), validators=[Optional(), Length(max=254), Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message=_l("Enter an e-mail address."))])

    def __init__(self, *args, stations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.role.choices = [(r.value, ROLE_LABELS[r]) for r in Role]
        self.stations.choices = list(stations)
