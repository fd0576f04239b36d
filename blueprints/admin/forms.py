"""Forms of district administration."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import SelectField
from wtforms.validators import Optional, ValidationError

from blueprints.core.forms import BaseForm, DateField
from blueprints.core.params import optional_id


class StatsFilterForm(BaseForm):
    """A plain GET form: works without JavaScript and the URL can be shared."""

    class Meta:
        csrf = False

    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("Until"), validators=[Optional()])
    campaign = SelectField(_l("Campaign"), coerce=optional_id, validators=[Optional()])
    station = SelectField(_l("Station"), coerce=optional_id, validators=[Optional()])
    subdistrict = SelectField(_l("Subdistrict or town"), validators=[Optional()])

    def __init__(self, *args, stations=(), subdistricts=(), campaigns=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.campaign.choices = [("", _l("All campaigns"))] + [(c.id, c.name) for c in campaigns]
        self.station.choices = [("", _l("All stations"))] + [(s.id, s.name) for s in stations]
        self.subdistrict.choices = [("", _l("All subdistricts"))] + [(s, s) for s in subdistricts]

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("The end date is before the start date."))
        if field.data and self.date_from.data and (field.data - self.date_from.data).days > 366 * 2:
            raise ValidationError(_l("Choose a period of at most two years."))
