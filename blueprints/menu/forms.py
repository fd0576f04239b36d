from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, SearchField, SelectField
from wtforms.validators import Length, Optional, ValidationError

from blueprints.catalog.models import Category
from blueprints.core.forms import BaseForm, DateField, FastSelect, LongSelectField
from blueprints.core.params import optional_id

from .queries import FilterOptions


class MenuFilterForm(BaseForm):
    """The menu's filters: a plain GET form, so it works without JavaScript and URLs can be shared."""

    class Meta:
        csrf = False

    q = SearchField(_l("Search"), validators=[Optional(), Length(max=60)])
    category = SelectField(_l("Category"), validators=[Optional()], validate_choice=True)
    station = LongSelectField(_l("Station"), coerce=optional_id, validators=[Optional()], widget=FastSelect())
    subdistrict = LongSelectField(_l("Subdistrict or town"), validators=[Optional()], widget=FastSelect())
    campaign = LongSelectField(_l("Campaign"), coerce=optional_id, validators=[Optional()])
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("Until"), validators=[Optional()])
    available = BooleanField(_l("Only with places left"))

    def __init__(self, *args, options: FilterOptions | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        options = options or FilterOptions([], [], [])
        self.stations_need_subdistrict = options.stations_need_subdistrict
        self.category.choices = [("", _l("All categories"))] + [(c.value, c.label) for c in Category]
        self.station.choices = [("", _l("All stations"))] + [(s.id, s.name) for s in options.stations]
        self.subdistrict.choices = [("", _l("All subdistricts"))] + [(s, s) for s in options.subdistricts]
        self.campaign.choices = [("", _l("All campaigns"))] + [(c.id, c.name) for c in options.campaigns]

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("The end date is before the start date."))
