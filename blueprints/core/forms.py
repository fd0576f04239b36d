"""Base form classes."""
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
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
