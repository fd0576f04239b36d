"""Base form classes."""
from flask_wtf import FlaskForm


class BaseForm(FlaskForm):
    """All forms derive from this; keeps room for project-wide behaviour."""


class EmptyForm(BaseForm):
    """A POST-only button still needs a form so that it carries the CSRF token."""
