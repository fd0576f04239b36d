"""Feedback after the day (群众评单): the booking organisation rates a session it attended.

Rules, each in one function below:

* ``may_rate``: the booking's organisation's (active) secretary, once the group was checked in
  (status attended) and the slot is over. Hosts, admins and other branches never rate.
* ``rate``: one rating per booking (1–5, an optional comment of at most ``COMMENT_MAX``
  characters); the same secretary's organisation may change it for ``EDIT_DAYS`` days after the
  first rating, then it is read-only. One transaction; a refusal raises :class:`FeedbackError`
  (with the form field it belongs to) and changes nothing.
* ``awaiting_feedback``: the organisation's attended sessions that ended in the last
  ``PROMPT_DAYS`` days and have no rating yet (the 待评价 prompt), one bounded query.

The rating is not written into the booking's history (``BookingEvent``): ``services.record``
raises the booking's revision and ``updated_at``, which calendar feeds publish as a new
``SEQUENCE`` / ``LAST-MODIFIED`` of an event that did not change, and the history is the
booking's own life (an attended booking ends with its check-in). The feedback row carries who
rated and when (``author_id``, ``created_at``, ``updated_at``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from blueprints.accounts.models import Organisation, User
from blueprints.catalog.models import Package, Slot, Station
from blueprints.core import clock
from blueprints.core.db import start_write_transaction
from blueprints.core.extensions import db

from .models import Booking, BookingFeedback, BookingStatus
from .services import NotAllowed

RATINGS = (5, 4, 3, 2, 1)  # as the form lists them, best first
RATING_LABELS = {
    5: _l("Very satisfied"),
    4: _l("Satisfied"),
    3: _l("Neutral"),
    2: _l("Not quite satisfied"),
    1: _l("Dissatisfied"),
}
EDIT_DAYS = 14
PROMPT_DAYS = 30
COMMENT_MAX = 500
PROMPT_LIMIT = 5
LATEST_COMMENTS = 10
EXPORT_LIMIT = 10_000


class FeedbackError(Exception):
    """A refusal for the user; ``field`` names the form field it belongs to (None: the form)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def rating_label(rating: int) -> str:
    """"5 分 非常满意": the points and their words (never the stars alone)."""
    return _("%(n)s points, %(label)s", n=rating, label=RATING_LABELS[rating])


# -- the rules ----------------------------------------------------------------------------------

def session_over(booking: Booking, now: datetime | None = None) -> bool:
    """The group was checked in and the slot has ended: the session can be rated."""
    return booking.status is BookingStatus.ATTENDED and (now or clock.now()) >= booking.slot.ends_at


def is_raters_organisation(user: User, booking: Booking) -> bool:
    """``user`` speaks for the booking's organisation: its active secretary."""
    return bool(user.active and user.is_secretary and user.organisation_id == booking.organisation_id)


def may_rate(user: User, booking: Booking, now: datetime | None = None) -> bool:
    """The booking's organisation's secretary, once the session it attended is over."""
    return is_raters_organisation(user, booking) and session_over(booking, now)


def editable_until(feedback: BookingFeedback) -> datetime:
    return feedback.created_at + timedelta(days=EDIT_DAYS)


def is_editable(feedback: BookingFeedback, now: datetime | None = None) -> bool:
    return (now or clock.now()) < editable_until(feedback)


def check_rating(rating) -> int:
    """The rating as an integer 1–5, or FeedbackError at the field ``rating``."""
    if isinstance(rating, bool) or not isinstance(rating, int) or rating not in RATING_LABELS:
        raise FeedbackError(_("Please choose a rating from 1 to 5 points."), "rating")
    return rating


def check_comment(comment: str | None) -> str:
    comment = (comment or "").strip()
    if len(comment) > COMMENT_MAX:
        raise FeedbackError(_("Please keep the comment to %(max)d characters.", max=COMMENT_MAX), "comment")
    return comment


def refusal(booking: Booking, feedback: BookingFeedback | None, now: datetime | None = None) -> str | None:
    """Why the booking's organisation cannot rate (or change its rating of) this session now, or None."""
    now = now or clock.now()
    if not session_over(booking, now):
        return _("A session can be rated once the group has been checked in and the slot is over.")
    if feedback is not None and not is_editable(feedback, now):
        return _("This rating was given more than %(days)s days ago and can no longer be changed.", days=EDIT_DAYS)
    return None


def feedback_of(booking_id: int) -> BookingFeedback | None:
    return db.session.scalar(sa.select(BookingFeedback).where(BookingFeedback.booking_id == booking_id))


def rate(user: User, booking_id: int, rating, comment: str | None = "") -> BookingFeedback:
    """Rate the session of ``booking_id`` (or change the rating while it is editable).

    NotAllowed for anyone who does not speak for the booking's organisation (routes answer 404);
    FeedbackError for a bad rating or comment, a session not over or not attended, or a rating
    past its ``EDIT_DAYS``. Nothing is written on a refusal."""
    rating = check_rating(rating)
    comment = check_comment(comment)
    for attempt in (1, 2):
        start_write_transaction()
        booking = db.session.scalar(
            sa.select(Booking).where(Booking.id == booking_id).options(joinedload(Booking.slot)))
        if booking is None or not is_raters_organisation(user, booking):
            db.session.rollback()
            raise NotAllowed()
        feedback = feedback_of(booking.id)
        now = clock.now()
        problem = refusal(booking, feedback, now)
        if problem:
            db.session.rollback()
            raise FeedbackError(problem)
        if feedback is None:
            feedback = BookingFeedback(booking_id=booking.id, rating=rating, comment=comment, author_id=user.id,
                                       created_at=now, updated_at=now)
            db.session.add(feedback)
        elif feedback.rating != rating or feedback.comment != comment:
            feedback.rating, feedback.comment, feedback.author_id, feedback.updated_at = rating, comment, user.id, now
        try:
            db.session.commit()
        except IntegrityError:  # a first rating of the same booking committed meanwhile: edit that one
            db.session.rollback()
            if attempt == 2:
                raise
            continue
        return feedback
    raise AssertionError("unreachable")


# -- what a page shows -----------------------------------------------------------------------------

@dataclass
class FeedbackState:
    """What the booking page's feedback block shows to ``user``."""

    booking: Booking
    feedback: BookingFeedback | None
    can_rate: bool  # the form is offered (a first rating, or an edit while editable)
    editable: bool
    editable_until: datetime | None
    shown: bool  # anything to show at all

    @property
    def label(self) -> str:
        return rating_label(self.feedback.rating) if self.feedback else ""


def state_for(user: User, booking: Booking, now: datetime | None = None) -> FeedbackState:
    """The feedback block of ``booking``'s page for ``user`` (who may see the booking): one query.
    The organisation's secretary rates; the station's hosts and admins read the rating."""
    now = now or clock.now()
    feedback = feedback_of(booking.id) if booking.status is BookingStatus.ATTENDED else None
    own = may_rate(user, booking, now)
    editable = feedback is not None and is_editable(feedback, now)
    return FeedbackState(
        booking=booking, feedback=feedback, can_rate=own and (feedback is None or editable),
        editable=own and editable, editable_until=editable_until(feedback) if feedback else None,
        shown=own or feedback is not None,
    )


def awaiting_feedback(organisation_id: int, *, now: datetime | None = None, days: int = PROMPT_DAYS,
                      limit: int = PROMPT_LIMIT) -> tuple[list[Booking], bool]:
    """The organisation's sessions to rate: attended, ended within ``days``, no rating yet; the
    latest first, at most ``limit`` (and whether there are more). One query."""
    now = now or clock.now()
    rated = sa.select(BookingFeedback.id).where(BookingFeedback.booking_id == Booking.id).exists()
    found = list(db.session.scalars(
        sa.select(Booking)
        .join(Slot, Slot.id == Booking.slot_id)
        .where(Booking.organisation_id == organisation_id, Booking.status == BookingStatus.ATTENDED,
               Slot.ends_at <= now, Slot.ends_at > now - timedelta(days=days), ~rated)
        .options(joinedload(Booking.slot).joinedload(Slot.package), joinedload(Booking.slot).joinedload(Slot.station))
        .order_by(Slot.ends_at.desc(), Booking.id.desc())
        .limit(limit + 1)
    ))
    return found[:limit], len(found) > limit


# -- stations' ratings ------------------------------------------------------------------------------

@dataclass
class RatingTotal:
    count: int = 0
    total: int = 0

    @property
    def average(self) -> float | None:
        return self.total / self.count if self.count else None

    def add(self, count: int, total: int) -> None:
        self.count += count
        self.total += total


@dataclass
class RatingRow(RatingTotal):
    id: int = 0
    name: str = ""


@dataclass
class Comment:
    """One rating with what it rated, as the host's page and the statistics list it."""

    feedback: BookingFeedback
    booking: Booking
    slot: Slot
    package_title: str
    station_name: str
    organisation_name: str

    @property
    def label(self) -> str:
        return rating_label(self.feedback.rating)


def _ids(station_ids: int | Iterable[int]) -> list[int]:
    return [station_ids] if isinstance(station_ids, int) else sorted(station_ids)


def _comment_query(*conditions):
    return (
        sa.select(BookingFeedback, Booking, Slot, Package.title, Station.name, Organisation.name)
        .join(Booking, Booking.id == BookingFeedback.booking_id)
        .join(Slot, Slot.id == Booking.slot_id)
        .join(Package, Package.id == Slot.package_id)
        .join(Station, Station.id == Slot.station_id)
        .join(Organisation, Organisation.id == Booking.organisation_id)
        .where(*conditions)
        .order_by(BookingFeedback.created_at.desc(), BookingFeedback.id.desc())
    )


@dataclass
class StationFeedback:
    summary: RatingTotal
    items: list[Comment]
    page: int
    pages: int
    total: int
    per_page: int

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1


def station_feedback(station_ids: int | Iterable[int], page: int = 1, per_page: int = 20) -> StationFeedback:
    """The ratings of the sessions at ``station_ids`` (one id or several), newest first, a page of
    ``per_page``, with their count and average: two queries whatever the data."""
    ids = _ids(station_ids) or [-1]
    count, total = db.session.execute(
        sa.select(sa.func.count(BookingFeedback.id), sa.func.coalesce(sa.func.sum(BookingFeedback.rating), 0))
        .join(Booking, Booking.id == BookingFeedback.booking_id)
        .join(Slot, Slot.id == Booking.slot_id)
        .where(Slot.station_id.in_(ids))
    ).one()
    pages = max(1, -(-count // per_page))
    page = min(max(page, 1), pages)
    rows = db.session.execute(
        _comment_query(Slot.station_id.in_(ids)).limit(per_page).offset((page - 1) * per_page)).all()
    return StationFeedback(RatingTotal(count, int(total)), [Comment(*row) for row in rows], page, pages, count,
                           per_page)


@dataclass
class RatingSummary:
    """Ratings of the sessions a statistics page covers: overall, per station, per package."""

    overall: RatingTotal = field(default_factory=RatingTotal)
    stations: list[RatingRow] = field(default_factory=list)
    packages: list[RatingRow] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)


def _by_best(rows) -> list[RatingRow]:
    return sorted(rows, key=lambda r: (-(r.average or 0), -r.count, r.name))


def rating_summary(*conditions, comments: int = LATEST_COMMENTS) -> RatingSummary:
    """Average and count per station and per package, and the latest comments (at most
    ``comments``), of the rated sessions that ``conditions`` (on Slot, Package, Station) select.
    Two queries: one grouped by station and package, one for the comments."""
    rows = db.session.execute(
        sa.select(Station.id, Station.name, Package.id, Package.title, sa.func.count(BookingFeedback.id),
                  sa.func.sum(BookingFeedback.rating))
        .select_from(BookingFeedback)
        .join(Booking, Booking.id == BookingFeedback.booking_id)
        .join(Slot, Slot.id == Booking.slot_id)
        .join(Package, Package.id == Slot.package_id)
        .join(Station, Station.id == Slot.station_id)
        .where(*conditions)
        .group_by(Station.id, Station.name, Package.id, Package.title)
    ).all()
    summary = RatingSummary()
    stations: dict[int, RatingRow] = {}
    packages: dict[int, RatingRow] = {}
    for station_id, station_name, package_id, package_title, count, total in rows:
        total = int(total or 0)
        summary.overall.add(count, total)
        stations.setdefault(station_id, RatingRow(id=station_id, name=station_name)).add(count, total)
        packages.setdefault(package_id, RatingRow(id=package_id, name=package_title)).add(count, total)
    summary.stations, summary.packages = _by_best(stations.values()), _by_best(packages.values())
    if comments and summary.overall.count:
        summary.comments = [Comment(*row) for row in db.session.execute(
            _comment_query(*conditions, BookingFeedback.comment != "").limit(comments)).all()]
    return summary


def all_comments(*conditions, limit: int = EXPORT_LIMIT) -> list[Comment]:
    """Every rating (with or without comment) that ``conditions`` select, newest first, for a
    spreadsheet (at most ``limit``)."""
    return [Comment(*row) for row in db.session.execute(_comment_query(*conditions).limit(limit)).all()]
