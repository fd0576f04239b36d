"""Branch secretaries: package and slot pages, booking, my bookings, changes, cancellation, inbox."""
from __future__ import annotations

from itertools import groupby
from typing import Callable

from flask import Blueprint, abort, current_app, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from jinja2_fragments.flask import render_block
from markupsafe import Markup

from blueprints.accounts.guards import secretary_required
from blueprints.core import changes, clock, render_cache
from blueprints.core.forms import EmptyForm
from blueprints.core.htmx import render, see_other, trigger, wants_fragment
from blueprints.core.page_cache import cached_block, render_public
from blueprints.core.params import page_arg, parse_int
from blueprints.core.templating import time_range
from blueprints.jobs.consumer import every_minute

from . import feedback as booking_feedback
from . import queries, reminders, services  # noqa: F401  (reminders: its jobs and minute sweep)
from .capacity import availability, availability_for
from .forms import BookingForm, CancelForm, FeedbackForm, HeadcountForm, MoveForm
from .models import BookingStatus
from .notifications import message_for

UNREAD_BADGE = "core/_unread_badge.html"
bp = Blueprint("booking", __name__, cli_group="bookings")


@bp.cli.command("settle")
def settle_command():
    """Record no-shows of every slot that has ended (run it from cron or a systemd timer)."""
    import click

    slots, bookings = services.settle_ended_slots()
    click.echo(f"settled {slots} slots: {bookings} bookings recorded as no-shows")


@every_minute("settle no-shows")
def _settle_every_minute():
    """The jobs consumer settles ended slots each minute, so no page view ever has to."""
    services.settle_ended_slots()

BOOKING_CHANGED = "booking-changed"


@bp.app_context_processor
def inject_unread_count():
    def unread_count() -> int:
        if not current_user.is_authenticated:
            return 0
        user_id = current_user.id

        def count(recording):
            return str(queries.unread_count(user_id)).encode(), {}

        # On every page a user sees: kept until one of their notifications changes.
        body, _ = render_cache.cached(("unread", user_id), [changes.inbox(user_id), changes.INBOXES], count)
        return int(body)

    return {"unread_count": unread_count}


def _page_number(name: str = "page") -> int:
    return page_arg(name)


# -- package and slot pages -----------------------------------------------------------------

@bp.get("/packages/<int:package_id>")
def package(package_id: int):
    def build(recording):
        found = queries.package_or_none(package_id)
        if found is None:
            abort(404)
        slots = queries.upcoming_slots_of_package(found.id, _page_number(), current_app.config["PAGE_SIZE"])
        if recording is not None:
            recording.changes_at(*(slot.starts_at for slot in slots.items))  # started slots leave the list
            if slots.page > 1:  # and the earlier pages' slots starting shift this one
                recording.changes_at(queries.next_start_of_package(found.id))
        return {"package": found, "slots": slots, "places": availability_for(slot.id for slot in slots.items)}

    page = _page_number()
    return render_public("booking/package.html", parts=("package", package_id, page),
                         deps=[changes.package(package_id)], build=build, fragment="slots",
                         path=request.path + (f"?page={page}" if page > 1 else ""))


def _slot_context(slot, form=None, error=None):
    """What the booking panel shows; after an unlocked refusal, what that refusal read."""
    reading = getattr(error, "reading", None)
    own = None
    if reading is not None:
        own = reading.own_booking
    elif current_user.is_authenticated and current_user.is_secretary:
        own = services.active_booking_of(current_user.organisation_id, slot.id)
    if form is None and current_user.is_authenticated and current_user.is_secretary:
        form = BookingForm(
            formdata=None,
            contact_name=current_user.organisation.secretary_name or current_user.display_name,
            contact_phone=current_user.phone or current_user.organisation.secretary_phone,
            headcount=None,
        )
    return {
        "slot": slot,
        "places": reading.places if reading is not None else availability(slot.id),
        "refusal": None if reading is not None and reading.open_to_organisation else (
            services.slot_refusal(slot) or (services.organisation_refusal(current_user.organisation)
                                            if current_user.is_authenticated and current_user.is_secretary else None)),
        "own_booking": own,
        "form": form,
        "error": error,
    }


def _load_slot(slot_id: int):
    slot = queries.slot_or_none(slot_id)
    if slot is None:
        abort(404)
    return slot


def _slot_moments(slot) -> tuple:
    """When time alone changes what the slot page shows: booking closes, the slot starts."""
    return slot.booking_closes_at, slot.starts_at


@bp.get("/slots/<int:slot_id>")
def slot(slot_id: int):
    if wants_fragment():  # the booking panel alone: the user's own
        return render("booking/slot.html", "booking_panel", **_slot_context(_load_slot(slot_id)))
    return _slot_page(slot_id)


def _slot_page(slot_id: int, *, panel: Callable[[], Markup] | None = None, status: int | None = None):
    """The slot page: its public part from the cache, the booking panel the user's own (``panel``:
    one rendered for this answer, e.g. a refused form with its errors)."""

    def build(recording):
        found = _load_slot(slot_id)
        if recording is not None:
            recording.changes_at(*_slot_moments(found))
        if current_user.is_authenticated:
            return {"slot": found, "places": availability(found.id)}  # the booking panel is theirs
        return _slot_context(found)

    return render_public("booking/slot.html", parts=("slot", slot_id), deps=[changes.slot(slot_id)],
                         build=build, blocks=("title", "slot_public"), fragment=None,
                         personal=lambda: ({"cached_blocks": {"booking_panel": (panel or _booking_panel)(slot_id)}}
                                           if current_user.is_authenticated
                                           else _slot_context(_load_slot(slot_id))),  # a visitor with a flash
                         status=status)


def _refused(slot_id: int, form: BookingForm, error=None):
    """The booking panel again with the form's errors (422): for htmx the panel alone, otherwise
    the slot page around it, whose public part comes from the cache as on a plain view."""
    reading = getattr(error, "reading", None)
    context = _slot_context(reading.slot if reading is not None else _load_slot(slot_id), form, error)
    if wants_fragment():
        return render("booking/slot.html", "booking_panel", status=422, **context)
    return _slot_page(slot_id, panel=lambda _: Markup(render_block("booking/slot.html", "booking_panel", **context)),
                      status=422)


def _booking_panel(slot_id: int):
    """The user's booking panel of a slot: their organisation's booking or the pre-filled form,
    kept until the slot or the organisation's bookings change (or booking closes)."""
    user = current_user
    organisation = user.organisation
    parts = ("panel", slot_id, user.id, user.role.value, user.display_name, user.phone,
             organisation.name if organisation else None, organisation.secretary_name if organisation else None,
             organisation.secretary_phone if organisation else None, organisation.active if organisation else None,
             organisation.kind.value if organisation else None)  # the panel names it 本支部/本单位/本组织

    def build(recording):
        found = _load_slot(slot_id)
        if recording is not None:
            recording.changes_at(*_slot_moments(found))
        return _slot_context(found)

    deps = [changes.slot(slot_id)] + ([changes.organisation(user.organisation_id)] if user.organisation_id else [])
    return cached_block("booking/slot.html", "booking_panel", parts=parts, deps=deps, build=build)


@bp.get("/slots/<int:slot_id>/places")
def places(slot_id: int):
    """The live places-left element (polled by htmx); without htmx, the slot page."""
    if not wants_fragment():
        return redirect(url_for("booking.slot", slot_id=slot_id))

    def build(recording):
        found = _load_slot(slot_id)
        return {"slot": found, "places": availability(found.id)}

    return render_public("booking/slot.html", parts=("places", slot_id), deps=[changes.slot(slot_id)],
                         build=build, fragment="places")


@bp.post("/slots/<int:slot_id>/book")
@secretary_required
def book(slot_id: int):
    found = _load_slot(slot_id)
    form = BookingForm()
    join_waitlist = request.form.get("waitlist") == "1"
    if not form.validate_on_submit():
        # One round: the form's own errors, and with them every refusal of the domain about the
        # fields that passed (a group too large for the package, places, quotas), not one by one.
        error = None
        if not getattr(form, "csrf_token", None) or not form.csrf_token.errors:  # not for an expired page
            problems = services.booking_problems(current_user, found.id, _booking_request(form, partial=True),
                                                 join_waitlist=join_waitlist)
            if problems:
                error = services.BookingError.of(problems)
                _attach(form, error)
        return _refused(found.id, form, error)
    try:
        booking = services.book(current_user, found.id, _booking_request(form), join_waitlist=join_waitlist)
    except services.NotAllowed:
        abort(404)
    except services.BookingError as error:
        if error.booking_id and not wants_fragment():
            flash(error.message, "warning")
            return redirect(url_for("booking.detail", booking_id=error.booking_id))
        _attach(form, error)
        return _refused(slot_id, form, error)
    flash(_booked_message(booking), "success")
    if wants_fragment():
        response = render("booking/slot.html", "booking_panel", oob=[UNREAD_BADGE], oob_badge=True,
                          **_slot_context(_load_slot(slot_id)))
        return trigger(response, BOOKING_CHANGED)
    return redirect(url_for("booking.detail", booking_id=booking.id))


def _booking_request(form: BookingForm, *, partial: bool = False) -> services.BookingRequest:
    """The form's values; ``partial``: None for each field the form already refused."""
    def value(field):
        return None if partial and field.errors else field.data

    return services.BookingRequest(
        headcount=value(form.headcount),
        contact_name=value(form.contact_name),
        contact_phone=value(form.contact_phone),
        note=form.note.data or "",
    )


def _booked_message(booking) -> str:
    if booking.status is BookingStatus.CONFIRMED:
        return _("Booked: your booking is confirmed.")
    if booking.status is BookingStatus.PENDING:
        return _("Booked: the station will review your booking; its places are held for you meanwhile.")
    return _("You are on the waitlist. If places free up before booking closes, you move up automatically "
             "and we tell you.")


def _attach(form, error: services.BookingError) -> None:
    """Each of the refusal's reasons at its field (or above the form), once."""
    for problem in error.problems:
        field = getattr(form, problem.field, None) if problem.field else None
        if field is not None:
            if problem.message not in field.errors:
                field.errors = list(field.errors) + [problem.message]
        elif problem.message not in form.form_errors:
            form.form_errors.append(problem.message)


# -- my bookings ----------------------------------------------------------------------------

@bp.get("/bookings")
@secretary_required
def my_bookings():
    per_page = current_app.config["PAGE_SIZE"]
    upcoming = queries.bookings_of_organisation(current_user.organisation_id, upcoming=True,
                                                page=_page_number("upcoming_page"), per_page=per_page)
    past = queries.bookings_of_organisation(current_user.organisation_id, upcoming=False,
                                            page=_page_number(), per_page=per_page)
    return render("booking/list.html", "past", upcoming=upcoming, past=past)


def _visible_booking(booking_id: int):
    try:
        return services.visible_booking(current_user, booking_id)
    except services.NotAllowed:
        abort(404)


def _detail(booking, *, headcount_form=None, cancel_form=None, status=200, block="booking_detail"):
    return render(
        "booking/detail.html",
        block,
        status=status,
        oob=[UNREAD_BADGE] if status == 200 and request.method == "POST" else [],
        oob_badge=True,
        booking=booking,
        events=booking.events,
        headcount_form=headcount_form or HeadcountForm(formdata=None, headcount=booking.headcount),
        cancel_form=cancel_form or CancelForm(formdata=None),
        can_change=booking.can_change(current_user),
        cancel_refusal=booking.cancel_refusal(current_user, clock.now()),
    )


@bp.get("/bookings/<int:booking_id>")
@login_required
def detail(booking_id: int):
    return _detail(_visible_booking(booking_id))


# -- printable confirmation (issue 15, item 3) -------------------------------------------------

@bp.get("/bookings/<int:booking_id>/confirmation")
@login_required
def confirmation(booking_id: int):
    """One A4 page to print or forward: whoever may see the booking (``services.may_see``: its
    organisation's secretary, its station's hosts, admins) sees it, everyone else gets 404. The
    booking, its slot, package, station and organisation come in one statement."""
    booking = _visible_booking(booking_id)
    return render("booking/confirmation.html", "confirmation", booking=booking,
                  forward_text=_forward_text(booking))


def _forward_text(booking) -> str:
    """The plain text a secretary forwards to the members (WeChat group, SMS): always in Chinese,
    the members' language, whatever language the page is read in."""
    from datetime import timedelta

    from blueprints.core.i18n import in_default_language
    from blueprints.core.templating import local_time, time_range

    slot, station = booking.slot, booking.slot.station
    with in_default_language():
        lines = [
            _("[Themed Party day] %(title)s", title=slot.package.title),
            _("Time: %(when)s", when=time_range(slot.starts_at, slot.ends_at)),
            _("Place: %(station)s, %(address)s", station=station.name, address=station.address)
            if station.address else _("Place: %(station)s", station=station.name),
            _("Gathering: please arrive at the station by %(time)s (10 minutes before the start) to check in.",
              time=local_time(slot.starts_at - timedelta(minutes=10))),
            _("Participants: %(organisation)s, %(n)s people", organisation=booking.organisation.name,
              n=booking.headcount),
            _("Contact: %(name)s %(phone)s", name=booking.contact_name, phone=booking.contact_phone),
        ]
        if station.phone:
            lines.append(_("Station phone: %(phone)s", phone=station.phone))
        lines.append(_("Booking number: %(number)s", number=booking.id))
    return "\n".join(str(line) for line in lines)


@bp.post("/bookings/<int:booking_id>/headcount")
@secretary_required
def change_headcount(booking_id: int):
    booking = _visible_booking(booking_id)
    form = HeadcountForm()
    if not form.validate_on_submit():
        return _detail(booking, headcount_form=form, status=422)
    was = booking.status
    try:
        changed = services.change_headcount(current_user, booking.id, form.headcount.data)
    except services.NotAllowed:
        abort(404)
    except services.BookingError as error:
        _attach(form, error)
        return _detail(_visible_booking(booking_id), headcount_form=form, status=422)
    if changed.status is not was and changed.status is BookingStatus.PENDING:
        flash(_("The number of people has been changed. The station approves bookings, so it will "
                "look at the larger group again; your places stay held meanwhile."), "success")
    else:
        flash(_("The number of people has been changed."), "success")
    return _after_change(booking_id)


@bp.post("/bookings/<int:booking_id>/cancel")
@login_required
def cancel(booking_id: int):
    booking = _visible_booking(booking_id)
    form = CancelForm()
    if not form.validate_on_submit():
        return _detail(booking, cancel_form=form, status=422)
    try:
        services.cancel(current_user, booking.id, form.reason.data or "")
    except services.NotAllowed:
        abort(404)
    except services.BookingError as error:
        _attach(form, error)
        return _detail(_visible_booking(booking_id), cancel_form=form, status=422)
    flash(_("The booking has been cancelled."), "success")
    return _after_change(booking_id)


def _after_change(booking_id: int):
    if wants_fragment():
        return trigger(_detail(_visible_booking(booking_id)), BOOKING_CHANGED)
    return redirect(url_for("booking.detail", booking_id=booking_id))


# -- notifications --------------------------------------------------------------------------

@bp.get("/notifications")
@login_required
def inbox():
    page = queries.notifications_of(current_user.id, _page_number(), current_app.config["PAGE_SIZE"])
    return render("booking/inbox.html", "notifications", notifications=page, form=EmptyForm(),
                  message_for=message_for)


@bp.post("/notifications/read")
@login_required
def mark_read():
    if EmptyForm().validate_on_submit():
        queries.mark_all_read(current_user.id)
    if wants_fragment():
        page = queries.notifications_of(current_user.id, 1, current_app.config["PAGE_SIZE"])
        return render("booking/inbox.html", "notifications", oob=[UNREAD_BADGE], oob_badge=True,
                      notifications=page, form=EmptyForm(), message_for=message_for)
    return redirect(url_for("booking.inbox"))


# -- feedback after the day (issue 15, item 5) -------------------------------------------------

@bp.app_context_processor
def inject_feedback():
    def feedback_block(booking):
        """The booking page's feedback block: its state for the current user, and the form (the
        one this request refused, with its errors, else a fresh one with the rating given)."""
        state = booking_feedback.state_for(current_user, booking)
        form = g.get("feedback_form")
        if form is None and state.can_rate:
            given = state.feedback
            form = FeedbackForm(formdata=None, rating=given.rating if given else None,
                                comment=given.comment if given else "")
        return {"state": state, "form": form, "thanks": g.get("feedback_thanks", False),
                "ratings": [(n, booking_feedback.rating_label(n)) for n in booking_feedback.RATINGS]}

    def awaiting_feedback():
        """The secretary's sessions to rate (the 待评价 prompt), else nothing."""
        if not (current_user.is_authenticated and current_user.is_secretary and current_user.organisation_id):
            return [], False
        return booking_feedback.awaiting_feedback(current_user.organisation_id)

    return {"feedback_block": feedback_block, "awaiting_feedback": awaiting_feedback}


@bp.post("/bookings/<int:booking_id>/feedback")
@login_required
def rate(booking_id: int):
    """The booking organisation's secretary rates the session (``rating`` 1–5, ``comment``); anyone
    else gets 404, as for another branch's booking. Without htmx: 303 back to the booking with a
    flash; with htmx: the feedback block."""
    booking = _visible_booking(booking_id)
    if not booking_feedback.is_raters_organisation(current_user, booking):
        abort(404)
    form = FeedbackForm()
    problem = booking_feedback.refusal(booking, booking_feedback.feedback_of(booking.id))
    if problem:  # whatever was sent: the session cannot be rated (yet, or any more)
        form.validate_on_submit()
        form.form_errors.append(problem)
    elif form.validate_on_submit():
        try:
            booking_feedback.rate(current_user, booking.id, form.rating.data, form.comment.data)
        except services.NotAllowed:
            abort(404)
        except booking_feedback.FeedbackError as error:
            field = getattr(form, error.field, None) if error.field else None
            if field is not None:
                field.errors = list(field.errors) + [error.message]
            else:
                form.form_errors.append(error.message)
        else:
            if wants_fragment():
                g.feedback_thanks = True
                return _detail(_visible_booking(booking_id), block="feedback")
            flash(_("Thank you for your feedback."), "success")
            return redirect(url_for("booking.detail", booking_id=booking_id), code=303)
    g.feedback_form = form
    return _detail(_visible_booking(booking_id), status=422, block="feedback")


# -- moving a booking to another slot (改期, issue 15 item 2) ---------------------------------

@bp.app_template_global()
def booking_can_move(booking) -> bool:
    """Whether the reader may move ``booking`` now (the 改期 links of the booking page and list)."""
    return current_user.is_authenticated and booking.can_move(current_user, clock.now())


def _own_booking(booking_id: int):
    """The booking for its own organisation's secretaries; 404 for everyone else, hosts and
    administrators included (only the branch moves its booking)."""
    booking = _visible_booking(booking_id)
    if not (current_user.is_secretary and booking.organisation_id == current_user.organisation_id):
        abort(404)
    return booking


def _move_page(booking, form=None, status=200):
    """The 改期 page (or for htmx its form): the booking's slot and a page of the slots it could
    move to, grouped by day — five statements whatever the number of slots."""
    refusal = booking.leaving_refusal(clock.now()) or services.organisation_refusal(booking.organisation)
    choices = None if refusal else services.move_choices(booking, _page_number(), current_app.config["PAGE_SIZE"])
    items = choices.items if choices else []
    days = [list(slots) for _day, slots in groupby(items, key=lambda s: clock.to_local(s.starts_at).date())]
    return render("booking/move.html", "move_form", status=status, booking=booking, refusal=refusal,
                  choices=choices, days=days, places=availability_for(s.id for s in items),
                  booked=services.booked_slot_ids(booking.organisation_id, [s.id for s in items]),
                  form=form or MoveForm(formdata=None))


@bp.get("/bookings/<int:booking_id>/move")
@login_required
def move(booking_id: int):
    return _move_page(_own_booking(booking_id))


@bp.post("/bookings/<int:booking_id>/move")
@login_required
def move_booking(booking_id: int):
    booking = _own_booking(booking_id)
    form = MoveForm()
    if not form.validate_on_submit():
        return _move_page(booking, form, status=422)
    try:
        moved = services.move(current_user, booking.id, parse_int(form.slot_id.data.strip()))
    except services.NotAllowed:
        abort(404)
    except services.BookingError as error:
        _attach(form, error)
        return _move_page(_own_booking(booking_id), form, status=422)
    flash(_("Moved to %(when)s at %(station)s.", when=time_range(moved.slot.starts_at, moved.slot.ends_at),
            station=moved.slot.station.name), "success")
    response = see_other(url_for("booking.detail", booking_id=moved.id))
    return trigger(response, BOOKING_CHANGED) if request.htmx else response
