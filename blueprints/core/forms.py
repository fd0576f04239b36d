"""Base form classes."""
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import IntegerField
from wtforms.validators import StopValidation
from wtforms.widgets import Select


class BaseForm(FlaskForm):
    """All forms derive from this; keeps room for project-wide behaviour."""


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
