"""Bookings of slots by organisations, their append-only history, and in-app notifications."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from blueprints.core.db import UTCDateTime, utcnow_default
from blueprints.core.extensions import db
from blueprints.core.models import TimestampMixin, enum_column


class BookingStatus(enum.Enum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    ATTENDED = "attended"
    NO_SHOW = "no_show"

    @property
    def label(self) -> str:
        return BOOKING_STATUS_LABELS[self]


BOOKING_STATUS_LABELS = {
    BookingStatus.PENDING: _l("Awaiting approval"),
    BookingStatus.CONFIRMED: _l("Confirmed"),
    BookingStatus.WAITLISTED: _l("On the waitlist"),
    BookingStatus.DECLINED: _l("Declined"),
    BookingStatus.CANCELLED: _l("Cancelled"),
    BookingStatus.ATTENDED: _l("Attended"),
    BookingStatus.NO_SHOW: _l("No-show"),
}


# Bookings in these states hold places on the slot.
HOLDING_STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED, BookingStatus.ATTENDED)
# An organisation may have at most one booking on a slot that is not in these states.
ENDED_STATUSES = (BookingStatus.DECLINED, BookingStatus.CANCELLED)
# A booking in these states is still open: the branch may change, cancel or move it, the slot's
# changes reach it, and a cancelled slot cancels it.
OPEN_STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED, BookingStatus.WAITLISTED)


class Booking(TimestampMixin, db.Model):
    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(sa.ForeignKey("slots.id", ondelete="RESTRICT"))
    organisation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    created_by_id: Mapped[Optional[int]] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    headcount: Mapped[int]
    contact_name: Mapped[str] = mapped_column(sa.String(60))
    contact_phone: Mapped[str] = mapped_column(sa.String(20))
    note: Mapped[str] = mapped_column(sa.String(500), default="")
    status: Mapped[BookingStatus] = mapped_column(enum_column(BookingStatus, "booking_status"))
    attended_headcount: Mapped[Optional[int]]
    checked_in_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    # Raised by every change (calendar SEQUENCE).
    revision: Mapped[int] = mapped_column(default=0)

    slot: Mapped["Slot"] = relationship()  # noqa: F821
    organisation: Mapped["Organisation"] = relationship()  # noqa: F821
    created_by: Mapped[Optional["User"]] = relationship()  # noqa: F821
    events: Mapped[list["BookingEvent"]] = relationship(
        back_populates="booking", order_by="BookingEvent.id"
    )

    __table_args__ = (
        sa.CheckConstraint("headcount > 0", name="headcount_positive"),
        sa.CheckConstraint(
            "attended_headcount IS NULL OR attended_headcount >= 0",
            name="attended_not_negative",
        ),
        sa.CheckConstraint("revision >= 0", name="revision_not_negative"),
        sa.Index(
            "uq_bookings_one_active_per_organisation",
            "slot_id",
            "organisation_id",
            unique=True,
            sqlite_where=sa.text("status NOT IN ('declined', 'cancelled')"),
            postgresql_where=sa.text("status NOT IN ('declined', 'cancelled')"),
        ),
        sa.Index("ix_bookings_slot_id_status", "slot_id", "status"),
        sa.Index("ix_bookings_organisation_id_status", "organisation_id", "status"),
        sa.Index("ix_bookings_updated_at", "updated_at"),
    )

    @property
    def holds_places(self) -> bool:
        return self.status in HOLDING_STATUSES

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    # -- who may do what, and why not (services refuse with these words, pages show or hide by them) --
    def is_own_branch(self, user) -> bool:
        return bool(user.active and user.is_secretary and user.organisation_id == self.organisation_id)

    def _station_to_call(self) -> dict:
        station = self.slot.station
        return {"hours": station.cancel_deadline_hours, "station": station.name, "phone": station.phone or "—"}

    def cancel_refusal(self, user, now: datetime) -> str | None:
        """Why ``user`` may not cancel the booking at ``now``, or None: its own branch until the
        station's cancellation deadline, the station's hosts and the district's administrators any time."""
        if not self.is_open:
            return _("This booking is already %(status)s.", status=self.status.label)
        if self.is_own_branch(user):
            if now > self.slot.cancel_deadline:
                return _("Online cancellation closed %(hours)s hours before the start. Please call %(station)s: %(phone)s.",
                         **self._station_to_call())
            return None
        if user.active and user.runs_station(self.slot.station_id):
            return None
        return _("Only the branch or the station can cancel this booking.")

    def can_cancel(self, user, now: datetime) -> bool:
        return self.cancel_refusal(user, now) is None

    def change_refusal(self, user) -> str | None:
        """Why ``user`` may not change the headcount, or None (the slot's own rules — closed,
        started, past the cut-off — are ``booking.services.slot_refusal``'s)."""
        if not self.is_own_branch(user):
            return _("Only the branch can change its headcount.")
        if not self.is_open:
            return _("This booking can no longer be changed.")
        return None

    def can_change(self, user) -> bool:
        return self.change_refusal(user) is None

    def leaving_refusal(self, now: datetime) -> str | None:
        """Why the branch may not move the booking out of its slot at ``now``, or None. Leaving
        releases its places like a cancellation: after the cancellation deadline the branch calls."""
        if not self.is_open:
            return _("This booking can no longer be moved (it is %(status)s).", status=self.status.label)
        if now > self.slot.cancel_deadline:
            return _("Online moving closed %(hours)s hours before the start. Please call %(station)s: %(phone)s.",
                     **self._station_to_call())
        return None

    def can_move(self, user, now: datetime) -> bool:
        """Only the booking's own branch moves it (改期), while it may leave its slot."""
        return self.is_own_branch(user) and self.leaving_refusal(now) is None

    def status_at(self, moment) -> "BookingStatus":
        """The status as it stands at ``moment``: a confirmed group that nobody had checked in by
        the end of its slot did not come, whether or not the no-shows have been settled yet."""
        if self.status is BookingStatus.CONFIRMED and moment >= self.slot.ends_at:
            return BookingStatus.NO_SHOW
        return self.status

    @classmethod
    def no_show_at(cls, slot_ends_at, moment):
        """SQL for ``status_at(moment) is NO_SHOW``, given the query's column of the slot's end."""
        return sa.or_(cls.status == BookingStatus.NO_SHOW,
                      sa.and_(cls.status == BookingStatus.CONFIRMED, slot_ends_at <= moment))

    def __repr__(self) -> str:
        return f"<Booking {self.id} slot={self.slot_id} org={self.organisation_id} {self.status.value}>"


class BookingEvent(db.Model):
    """Append-only: one row per state change or edit of a booking."""

    __tablename__ = "booking_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(
        sa.ForeignKey("bookings.id", ondelete="CASCADE"), index=True
    )
    actor_id: Mapped[Optional[int]] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow_default, index=True)
    from_status: Mapped[Optional[BookingStatus]] = mapped_column(
        enum_column(BookingStatus, "booking_event_from_status")
    )
    to_status: Mapped[BookingStatus] = mapped_column(
        enum_column(BookingStatus, "booking_event_to_status")
    )
    action: Mapped[str] = mapped_column(sa.String(30))
    reason: Mapped[str] = mapped_column(sa.String(500), default="")
    detail: Mapped[str] = mapped_column(sa.Text, default="")

    booking: Mapped[Booking] = relationship(back_populates="events")
    actor: Mapped[Optional["User"]] = relationship()  # noqa: F821

    # The audit trail (/admin/audit) filters by action or resulting status, newest first.
    __table_args__ = (
        sa.Index("ix_booking_events_action_at", "action", "at"),
        sa.Index("ix_booking_events_to_status_at", "to_status", "at"),
    )

    @validates("action")
    def _known_action(self, _key, action: str) -> str:
        # Every page shows the action through BOOKING_EVENT_ACTIONS: an unlabelled key would show raw.
        if action not in BOOKING_EVENT_ACTIONS:
            raise ValueError(f"booking event action {action!r} has no label in BOOKING_EVENT_ACTIONS")
        return action

    @property
    def label(self) -> str:
        return booking_action_label(self.action)

    @property
    def detail_text(self) -> str:
        if self.action == "slot_changed":  # the slot's own "time a–b → c–d"
            from blueprints.catalog.models import slot_event_detail

            return slot_event_detail("edited", self.detail or "")
        return self.detail or ""


# What a booking event's action is called on every page that shows it (booking page, audit trail).
BOOKING_EVENT_ACTIONS = {
    "created": _l("Booked"),
    "headcount_changed": _l("Changed the number of people"),
    "cancelled": _l("Cancelled the booking"),
    "approved": _l("Approved"),
    "declined": _l("Declined"),
    "checked_in": _l("Checked in"),
    "no_show": _l("Marked as no-show"),
    "promoted": _l("Moved up from the waitlist"),
    "slot_changed": _l("Slot changed by the station"),
    "slot_cancelled": _l("Slot cancelled by the station"),
    "moved": _l("Moved to another slot"),
}


def booking_action_label(action: str) -> str:
    return str(BOOKING_EVENT_ACTIONS.get(action, action))


class Notification(db.Model):
    """An in-app message to one user; ``kind`` + ``params`` are rendered in the reader's language."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    booking_id: Mapped[Optional[int]] = mapped_column(
        sa.ForeignKey("bookings.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(40))
    params: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow_default)
    read_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    user: Mapped["User"] = relationship()  # noqa: F821
    booking: Mapped[Optional[Booking]] = relationship()

    __table_args__ = (sa.Index("ix_notifications_user_id_read_at", "user_id", "read_at"),)


class BookingFeedback(TimestampMixin, db.Model):
    """The booking organisation's rating of a session it attended (群众评单, "feedback after the
    day"): one row per booking, written and edited only through ``booking/feedback.py``."""

    __tablename__ = "booking_feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(sa.ForeignKey("bookings.id", ondelete="CASCADE"), unique=True)
    rating: Mapped[int]
    comment: Mapped[str] = mapped_column(sa.String(500), default="")
    author_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)

    booking: Mapped[Booking] = relationship()
    author: Mapped[Optional["User"]] = relationship()  # noqa: F821

    # Statistics reach it from the slots they filter (booking_id, unique); the host's list and the
    # latest comments read it newest first.
    __table_args__ = (
        sa.CheckConstraint("rating >= 1 AND rating <= 5", name="rating_1_to_5"),
        sa.Index("ix_booking_feedback_created_at", "created_at"),
    )
