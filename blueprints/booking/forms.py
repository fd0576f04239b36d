from flask_babel import lazy_gettext as _l
from wtforms import StringField, TelField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from blueprints.core.forms import BaseForm, WholeNumberField
from blueprints.core.params import parse_int

from .feedback import COMMENT_MAX

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


RATING_MESSAGE = _l("Please choose a rating from 1 to 5 points.")


class FeedbackForm(BaseForm):
    rating = WholeNumberField(
        _l("Rating"),
        validators=[InputRequired(RATING_MESSAGE), NumberRange(min=1, max=5, message=RATING_MESSAGE)],
        invalid_message=RATING_MESSAGE,
    )
    comment = TextAreaField(
        _l("Comment (optional)"),
        validators=[Length(max=COMMENT_MAX, message=_l("Please keep the comment to %(max)d characters."))],
    )


class MoveForm(BaseForm):
    """``POST /bookings/<id>/move``: ``slot_id``, one of the slots the move page lists."""

    slot_id = StringField(_l("Slot to move to"), validators=[DataRequired(_l("Please choose the slot to move to."))])

    def validate_slot_id(self, field):
        if not parse_int((field.data or "").strip()):
            raise ValidationError(_l("Please choose one of the slots listed."))
