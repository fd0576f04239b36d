from flask_babel import lazy_gettext as _l
from wtforms import StringField, TelField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from blueprints.core.forms import BaseForm, WholeNumberField

HEADCOUNT_MESSAGE = _l("Please give the number of people as a whole number.")


class BookingForm(BaseForm):
    headcount = WholeNumberField(
        _l("Number of people"),
        validators=[InputRequired(HEADCOUNT_MESSAGE), NumberRange(min=1, max=10000, message=HEADCOUNT_MESSAGE)],
        invalid_message=HEADCOUNT_MESSAGE,
    )
    contact_name = StringField(
        _l("Contact person"), validators=[DataRequired(_l("Please give a contact name.")), Length(max=60)]
    )
    contact_phone = TelField(
        _l("Contact phone"), validators=[DataRequired(_l("Please give a contact phone number.")), Length(max=40)]
    )
    note = TextAreaField(_l("Note for the station"), validators=[Optional(), Length(max=500)])


class HeadcountForm(BaseForm):
    headcount = WholeNumberField(
        _l("Number of people"),
        validators=[InputRequired(HEADCOUNT_MESSAGE), NumberRange(min=1, max=10000, message=HEADCOUNT_MESSAGE)],
        invalid_message=HEADCOUNT_MESSAGE,
    )


class CancelForm(BaseForm):
    reason = TextAreaField(_l("Reason for cancelling"), validators=[Optional(), Length(max=500)])
