"""Base form classes."""
from datetime import date

from flask import request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.form import _Auto, _is_submitted
from markupsafe import Markup, escape
from werkzeug.datastructures import CombinedMultiDict
from wtforms import DateField as WTFormsDateField
from wtforms import FileField, IntegerField, SelectField
from wtforms.validators import StopValidation
from wtforms.widgets import Select

from .input_guard import guard_text_fields

# The days a date field accepts: far beyond any booking or statistic, and far enough from the
# ends of Python's calendar (year 1 and 9999) that adding a day or a timezone cannot overflow.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)


class BaseForm(FlaskForm):
    """All forms derive from this."""

    class Meta:
        def wrap_formdata(self, form, formdata):
            """Form fields only. Flask-WTF reads a JSON body as the form data too, and hands its
            numbers, lists and objects to fields that expect strings (a 500); here a JSON body
            is a form with no fields, which every form already answers."""
            if formdata is _Auto:
                if not _is_submitted():
                    return None
                if request.files and any(isinstance(field, FileField) for field in form):
                    return CombinedMultiDict((request.files, request.form))
                return request.form  # a file part posted in place of a text field stays out
            return formdata

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        guard_text_fields(self)  # every text field refuses control characters (input_guard.py)

    def process(self, formdata=None, obj=None, data=None, extra_filters=None, **kwargs):
        # A value given by name wins over the object's attribute of that name (WTForms prefers the
        # object): an edit form shows a relation by its id and an enum by its value where the
        # model holds an object, e.g. PackageForm(obj=package, category=package.category.value).
        given = {**(data or {}), **kwargs}
        if obj is not None and given:
            obj = _Preferring(given, obj)
        super().process(formdata, obj, data, extra_filters, **kwargs)


class _Preferring:
    """``obj`` with some attributes given instead."""

    def __init__(self, given: dict, obj):
        self._given, self._obj = given, obj

    def __getattr__(self, name):
        if name in self._given:
            return self._given[name]
        return getattr(self._obj, name)


class EmptyForm(BaseForm):
    """A POST-only button still needs a form so that it carries the CSRF token."""


class FastSelect(Select):
    """WTForms' select, with options built as plain strings: the menu's lists run to hundreds."""

    @classmethod
    def render_option(cls, choice, **kwargs):
        if kwargs or choice.render_kw:
            return super().render_option(choice, **kwargs)
        value = str(choice.value) if isinstance(choice.value, bool) else choice.value
        selected = " selected" if choice.selected else ""
        label = escape(choice.label or choice.value)
        return Markup(f'<option value="{escape(value)}"{selected}>{label}</option>')


class LongSelectField(SelectField):
    """A select of hundreds of options (the menu's stations): WTForms compares the submitted
    value with each choice in turn, on every request; this looks it up in a set of the choices'
    values first. Empty input is left to the Optional / InputRequired validators, as WTForms
    leaves it in the end (Optional clears the choice error)."""

    def pre_validate(self, form):
        if not self.raw_data or not self.raw_data[0]:
            return
        if isinstance(self.choices, list) and \
                self.data in {choice[0] for choice in self.choices if isinstance(choice, tuple)}:
            return
        super().pre_validate(form)  # the exact rule, for what the set does not hold


class WholeNumberField(IntegerField):
    """An integer field whose unreadable input gets one clear message of the form's choosing
    (WTForms would add its generic "not a valid integer" and then the range message too)."""

    def __init__(self, label=None, validators=None, invalid_message=None, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.invalid_message = invalid_message

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            self.data = None
            raise ValueError(self.invalid_message or str(exc)) from None

    def pre_validate(self, form):
        # Empty input is left to Optional / InputRequired, which replace the parse error.
        if self.process_errors and self.raw_data and self.raw_data[0].strip():
            raise StopValidation()


class DateField(WTFormsDateField):
    """WTForms' date field limited to ``FIRST_DAY`` … ``LAST_DAY``: "9999-12-31" is a valid ISO
    date, but one day later overflows (a 500 where a period ends "the day after"), and so does
    year 1 moved to UTC. Outside the range it is a form error saying which dates are accepted."""

    def process_formdata(self, valuelist):
        super().process_formdata(valuelist)
        if self.data is not None and not FIRST_DAY <= self.data <= LAST_DAY:
            self.data = None
            raise ValueError(_l("Enter a date between %(first)s and %(last)s.",
                                first=FIRST_DAY.isoformat(), last=LAST_DAY.isoformat()))
