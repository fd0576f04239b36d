"""Station hosts: dashboard, approvals, slots (one-off and recurring), roster, check-in."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import (Blueprint, abort, current_app, flash, make_response, redirect, render_template, request,
                   url_for)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required

from blueprints.accounts.guards import host_required
from blueprints.booking import services as booking_services
from blueprints.booking.models import Booking, BookingStatus
from blueprints.booking.services import BookingError, NotAllowed
from blueprints.catalog.models import SlotStatus
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.core.forms import EmptyForm
from blueprints.core.htmx import render, see_other, wants_fragment
from blueprints.core.params import page_arg
from blueprints.core.templating import local_date, time_range

from . import checkin, exports, recurrence, services
from .forms import (BulkDecisionForm, CapacityForm, CheckInForm, DeclineForm, EditSlotForm, ReasonForm, SeriesForm,
                    SlotForm)
from .services import HostError

bp = Blueprint("host", __name__, url_prefix="/host")


@bp.app_template_global()
def host_checkin_qr(booking):
    return checkin.checkin_qr_svg(booking)


@bp.app_template_global()
def host_checkin_url(booking):
    return checkin.checkin_url(booking)


@bp.app_template_global()
def host_shows_qr(booking):
    return checkin.shows_qr(booking)


@bp.app_template_global()
def host_checkin_day(slot):
    return checkin.opens_on(slot)


def _page() -> int:
    return page_arg()


def _slot_or_404(slot_id: int):
    try:
        return services.host_slot(current_user, slot_id)
    except NotAllowed:
        abort(404)


def _add_error(form, error) -> None:
    name = getattr(error, "field", None)
    if name and name in form:
        form[name].errors = list(form[name].errors) + [error.message]
    else:
        form.form_errors.append(error.message)


def _local(day, at) -> datetime:
    """A Shanghai wall-clock date and time as an aware UTC datetime."""
    return clock.local_datetime(day, at.hour, at.minute).astimezone(timezone.utc)


# -- dashboard and approvals ------------------------------------------------------------------

@bp.get("/")
@host_required
def dashboard():
    data = services.dashboard(current_user, _page(), current_app.config["PAGE_SIZE"])
    return render("host/dashboard.html", "upcoming", data=data, stations=services.host_stations(current_user),
                  tomorrow=clock.today() + timedelta(days=1))


def _approvals_page(status=200, errors=None, forms=None, bulk_form=None, bulk_result=None):
    pagination, places = services.pending_bookings(current_user, _page(), current_app.config["PAGE_SIZE"])
    if bulk_form is None:
        bulk_form = BulkDecisionForm(formdata=None)
    if request.method == "GET" and request.args.get("select") == "all":  # 全选 without JavaScript
        selected = {booking.id for booking in pagination.items}
    else:
        selected = set(bulk_form.booking_ids.data or []) if bulk_result is None else set()
    return render("host/approvals.html", "approvals", status=status, page_obj=pagination, places=places,
                  errors=errors or {}, forms=forms or {}, empty_form=EmptyForm(), bulk_form=bulk_form,
                  selected=selected, bulk_result=bulk_result,
                  bulk_summary=_bulk_summary(bulk_result, names=False) if bulk_result else None,
                  bulk_refusals=[_refusal_text(item) for item in bulk_result.refused] if bulk_result else [])


@bp.get("/approvals")
@host_required
def approvals():
    return _approvals_page()


@bp.post("/bookings/<int:booking_id>/approve")
@host_required
def approve(booking_id: int):
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        booking = booking_services.approve(current_user, booking_id)
    except NotAllowed:
        abort(404)
    except BookingError as exc:
        return _approvals_page(409, errors={booking_id: exc.message})
    flash(_("Approved the booking of %(organisation)s.", organisation=booking.organisation.name), "success")
    return redirect(url_for("host.approvals"))


@bp.post("/bookings/<int:booking_id>/decline")
@host_required
def decline(booking_id: int):
    form = DeclineForm()
    if not form.validate_on_submit():
        return _approvals_page(422, forms={booking_id: form})
    try:
        booking = booking_services.decline(current_user, booking_id, form.reason.data)
    except NotAllowed:
        abort(404)
    except BookingError as exc:
        if exc.field == "reason":
            _add_error(form, exc)
            return _approvals_page(422, forms={booking_id: form})
        return _approvals_page(409, errors={booking_id: exc.message})
    flash(_("Declined the booking of %(organisation)s.", organisation=booking.organisation.name), "success")
    return redirect(url_for("host.approvals"))


# How many refusals the flash after a bulk decision names: the flash travels in the session
# cookie (4 KB); the rest are counted. The htmx answer lists every one.
FLASHED_REFUSALS = 5


def _refusal_text(item: services.BulkItem) -> str:
    if not item.found:
        return _("Booking no. %(id)s: %(reason)s", id=item.booking_id, reason=item.message)
    return _("%(organisation)s (%(time)s): %(reason)s", organisation=item.organisation,
             time=time_range(item.starts_at, item.ends_at), reason=item.message)


def _bulk_summary(result: services.BulkResult, limit: int | None = None, names: bool = True) -> str:
    """e.g. 已通过 3 个预约；1 个未能处理：某支部（12月18日周五 09:00–11:00）：通过该预约将超出该场次的名额。
    ``names=False``: up to the colon (the page lists the refusals below it)."""
    approve = result.action == services.APPROVE
    if not result.refused:
        return (_("Approved %(count)s bookings.", count=len(result.done)) if approve
                else _("Declined %(count)s bookings; their branches have been told the reason.",
                       count=len(result.done)))
    listed = ""
    if names:
        shown = result.refused if limit is None else result.refused[:limit]
        listed = " ".join(_refusal_text(item) for item in shown)
        if len(result.refused) > len(shown):
            listed += " " + _("And %(count)s more.", count=len(result.refused) - len(shown))
    if not result.done:
        text = _("None of the selected bookings could be decided: %(list)s", list=listed)
    elif approve:
        text = _("Approved %(done)s bookings; %(refused)s could not be decided: %(list)s",
                 done=len(result.done), refused=len(result.refused), list=listed)
    else:
        text = _("Declined %(done)s bookings; %(refused)s could not be decided: %(list)s",
                 done=len(result.done), refused=len(result.refused), list=listed)
    return text.strip()


@bp.post("/approvals/bulk")
@host_required
def bulk_decide():
    """Approve or decline the selected bookings (``services.decide_many``); a refusal of one leaves
    the others decided. The page again with a summary (htmx), or 303 to it with a flash."""
    form = BulkDecisionForm()
    if not form.validate_on_submit():
        return _approvals_page(422, bulk_form=form)
    try:
        result = services.decide_many(current_user, form.booking_ids.data, form.action.data, form.reason.data or "")
    except NotAllowed:
        abort(404)
    except HostError as exc:
        _add_error(form, exc)
        return _approvals_page(422, bulk_form=form)
    if wants_fragment():
        return _approvals_page(bulk_result=result)
    flash(_bulk_summary(result, FLASHED_REFUSALS),
          "warning" if result.refused else "success")
    page = _page()
    return redirect(url_for("host.approvals", page=page if page > 1 else None), 303)


# -- creating slots ---------------------------------------------------------------------------

def _place_choices(form):
    stations = services.host_stations(current_user)
    packages = services.offered_packages([s.id for s in stations])
    form.set_choices(stations, packages)
    return stations, packages


@bp.route("/slots/new", methods=["GET", "POST"])
@host_required
def new_slot():
    form = SlotForm()
    _place_choices(form)
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            try:
                slot = services.create_slot(
                    current_user, station_id=form.station.data, package_id=form.package.data,
                    starts_at=_local(form.day.data, form.start.data), ends_at=_local(form.day.data, form.end.data),
                    capacity=form.capacity.data, max_groups=form.max_groups.data, note=form.note.data or "")
            except NotAllowed:
                abort(404)
            except HostError as exc:
                _add_error(form, exc)
            else:
                flash(_("Slot created."), "success")
                return see_other(url_for("host.slot", slot_id=slot.id))
    return render("host/slot_new.html", "slot_form", status=status, form=form)


@bp.route("/series/new", methods=["GET", "POST"])
@host_required
def new_series():
    form = SeriesForm()
    _place_choices(form)
    if request.method == "GET" and not form.first_day.data:
        form.first_day.data = clock.today() + timedelta(days=1)
        form.last_day.data = clock.today() + timedelta(days=90)
    status, preview = 200, None
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            rule = form.rule()
            try:
                if request.form.get("action") == "save":
                    slots = services.create_series(
                        current_user, station_id=form.station.data, package_id=form.package.data, rule=rule,
                        capacity=form.capacity.data, max_groups=form.max_groups.data, note=form.note.data or "")
                    flash(_series_created(slots), "success")
                    return see_other(url_for("host.dashboard"))
                preview = recurrence.occurrences(
                    rule, "zh_CN" if str(get_locale()).startswith("zh") else "en_US")
                status = 200
            except NotAllowed:
                abort(404)
            except (HostError, recurrence.RuleError) as exc:
                _add_error(form, exc)
    return render("host/series_new.html", "series", status=status, form=form, preview=preview,
                  max_occurrences=recurrence.MAX_OCCURRENCES)


def _series_created(slots) -> str:
    first, last = local_date(slots[0].starts_at), local_date(slots[-1].starts_at)
    if first == last:
        return _("Created %(count)s slots on %(day)s.", count=len(slots), day=first)
    return _("Created %(count)s slots, from %(first)s to %(last)s.", count=len(slots), first=first, last=last)


# -- one slot ---------------------------------------------------------------------------------

def _slot_page(slot, status=200, **forms):
    places = services.slot_lines([slot])[0]
    local_start, local_end = clock.to_local(slot.starts_at), clock.to_local(slot.ends_at)
    edit_form = forms.get("edit_form") or EditSlotForm(
        formdata=None, day=local_start.date(), start=local_start.time(), end=local_end.time(),
        capacity=slot.capacity, max_groups=slot.max_groups, note=slot.note)
    capacity_form = forms.get("capacity_form")
    if capacity_form is not None:  # the capacity alone was posted: its errors on the page's one capacity field
        edit_form.capacity.raw_data = capacity_form.capacity.raw_data
        edit_form.capacity.data = capacity_form.capacity.data
        edit_form.capacity.errors = list(capacity_form.capacity.errors)
        edit_form.form_errors = list(capacity_form.form_errors)
    return render(
        "host/slot.html", "slot_main", status=status, slot=slot, line=places, edit_form=edit_form,
        cancel_form=forms.get("cancel_form") or ReasonForm(formdata=None), empty_form=EmptyForm(),
        events=services.slot_events(slot), SlotStatus=SlotStatus, ended=clock.now() >= slot.ends_at,
    )


@bp.get("/slots/<int:slot_id>")
@host_required
def slot(slot_id: int):
    return _slot_page(_slot_or_404(slot_id))


@bp.post("/slots/<int:slot_id>/edit")
@host_required
def edit_slot(slot_id: int):
    slot = _slot_or_404(slot_id)
    form = EditSlotForm()
    if form.validate_on_submit():
        try:
            services.edit_slot(
                current_user, slot_id, starts_at=_local(form.day.data, form.start.data),
                ends_at=_local(form.day.data, form.end.data), capacity=form.capacity.data,
                max_groups=form.max_groups.data, note=form.note.data or "")
        except NotAllowed:
            abort(404)
        except HostError as exc:
            _add_error(form, exc)
        else:
            flash(_("Slot saved."), "success")
            return redirect(url_for("host.slot", slot_id=slot_id))
    return _slot_page(_slot_or_404(slot.id), 422, edit_form=form)


@bp.post("/slots/<int:slot_id>/capacity")
@host_required
def capacity(slot_id: int):
    _slot_or_404(slot_id)
    form = CapacityForm()
    if form.validate_on_submit():
        try:
            services.change_capacity(current_user, slot_id, form.capacity.data)
        except NotAllowed:
            abort(404)
        except HostError as exc:
            _add_error(form, exc)
        else:
            flash(_("Capacity saved."), "success")
            return redirect(url_for("host.slot", slot_id=slot_id))
    return _slot_page(_slot_or_404(slot_id), 422, capacity_form=form)


def _set_open(slot_id: int, open_: bool):
    _slot_or_404(slot_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        services.set_open(current_user, slot_id, open_)
    except NotAllowed:
        abort(404)
    except HostError as exc:
        flash(exc.message, "error")
    else:
        flash(_("Booking reopened.") if open_ else _("Booking closed. Existing bookings stay."), "success")
    return redirect(url_for("host.slot", slot_id=slot_id))


@bp.post("/slots/<int:slot_id>/close")
@host_required
def close_slot(slot_id: int):
    return _set_open(slot_id, False)


@bp.post("/slots/<int:slot_id>/reopen")
@host_required
def reopen_slot(slot_id: int):
    return _set_open(slot_id, True)


@bp.post("/slots/<int:slot_id>/cancel")
@host_required
def cancel_slot(slot_id: int):
    _slot_or_404(slot_id)
    form = ReasonForm()
    if form.validate_on_submit():
        try:
            cancelled = services.cancel_slot(current_user, slot_id, form.reason.data)
        except NotAllowed:
            abort(404)
        except HostError as exc:
            _add_error(form, exc)
        else:
            flash(_("Slot cancelled; %(count)s bookings were cancelled and their branches told.",
                    count=len(cancelled)), "success")
            return redirect(url_for("host.slot", slot_id=slot_id))
    return _slot_page(_slot_or_404(slot_id), 422, cancel_form=form)


# -- roster -----------------------------------------------------------------------------------

@bp.get("/slots/<int:slot_id>/roster")
@host_required
def roster(slot_id: int):
    slot = _slot_or_404(slot_id)
    bookings = services.roster(slot)
    now = clock.now()
    return render("host/roster.html", "roster", slot=slot, bookings=bookings,
                  totals=services.roster_totals(bookings), line=services.slot_lines([slot])[0], BookingStatus=BookingStatus, now=now,
                  unsettled=now >= slot.ends_at and any(b.status is BookingStatus.CONFIRMED for b in bookings),
                  settle_form=EmptyForm())


def _download(body: bytes, mimetype: str, filename: str):
    response = make_response(body)
    response.mimetype = mimetype
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{filename.encode('ascii', 'ignore').decode() or 'export'}\"; "
        f"filename*=UTF-8''{_quote(filename)}")
    return response


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text)


def _roster_name(slot, ext: str) -> str:
    return f"roster-{slot.id}-{clock.to_local(slot.starts_at):%Y%m%d}.{ext}"


@bp.get("/slots/<int:slot_id>/roster.csv")
@host_required
def roster_csv(slot_id: int):
    slot = _slot_or_404(slot_id)
    body = exports.roster_csv(slot, services.roster(slot))
    return _download(body, "text/csv", _roster_name(slot, "csv"))


@bp.get("/slots/<int:slot_id>/roster.xlsx")
@host_required
def roster_xlsx(slot_id: int):
    slot = _slot_or_404(slot_id)
    body = exports.roster_xlsx(slot, services.roster(slot))
    return _download(body, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                     _roster_name(slot, "xlsx"))


@bp.post("/slots/<int:slot_id>/no-shows")
@host_required
def no_shows(slot_id: int):
    _slot_or_404(slot_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        count = services.mark_no_shows(current_user, slot_id)
    except HostError as error:
        flash(error.message, "error")
    else:
        flash(_("%(count)s bookings marked as no-show.", count=count), "success")
    return redirect(url_for("host.roster", slot_id=slot_id))


# -- check-in ---------------------------------------------------------------------------------

@bp.get("/slots/<int:slot_id>/check-in")
@host_required
def checkin_list(slot_id: int):
    slot = _slot_or_404(slot_id)
    bookings = services.checkin_bookings(slot)
    tokens = {b.id: checkin.checkin_token(b) for b in bookings}
    return render("host/checkin_list.html", "checkin_list", slot=slot, bookings=bookings, tokens=tokens,
                  BookingStatus=BookingStatus, checkin_open=slot.check_in_is_open(clock.now()))


def _checkin_denied(message: str):
    return make_response(render_template("host/checkin_denied.html", message=message), 403)


@bp.route("/check-in/<token>", methods=["GET", "POST"])
@login_required
def check_in(token: str):
    booking_id = checkin.booking_id_from(token)
    if booking_id is None:
        abort(404)
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        abort(404)
    if not current_user.runs_station(booking.slot.station_id):
        return _checkin_denied(_("This check-in code can only be used by a host of %(station)s. Nothing was recorded.",
                                 station=booking.slot.station.name))
    form = CheckInForm()
    status = 200
    if request.method == "GET":
        form.attended_headcount.data = booking.attended_headcount if booking.attended_headcount is not None \
            else booking.headcount
    else:
        status = 422
        if form.validate_on_submit():
            try:
                booking_services.check_in(current_user, booking_id, form.attended_headcount.data)
            except NotAllowed:
                return _checkin_denied(_("This check-in code can only be used by a host of the station. "
                                         "Nothing was recorded."))
            except BookingError as exc:
                _add_error(form, exc)
                booking = db.session.get(Booking, booking_id)
            else:
                flash(_("%(organisation)s checked in with %(count)s people.",
                        organisation=booking.organisation.name, count=form.attended_headcount.data), "success")
                if not current_user.is_host:  # an administrator has no host pages: back to the booking
                    return redirect(url_for("booking.detail", booking_id=booking.id))
                return redirect(url_for("host.checkin_list", slot_id=booking.slot_id))
    return render("host/checkin.html", "checkin", status=status, booking=booking, form=form,
                  token=token, BookingStatus=BookingStatus,
                  checkin_open=booking.slot.check_in_is_open(clock.now()))


@bp.get("/bookings/<int:booking_id>/sign-in-sheet.xlsx")
@login_required
def sign_in_sheet(booking_id: int):
    try:
        booking = booking_services.visible_booking(current_user, booking_id)
    except NotAllowed:
        abort(404)
    if booking.status is not BookingStatus.ATTENDED:
        abort(404)
    body = exports.sign_in_sheet_xlsx(booking)
    name = f"sign-in-{booking.id}-{clock.to_local(booking.slot.starts_at):%Y%m%d}.xlsx"
    return _download(body, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", name)



# -- the host's calendar (/host/calendar) ---------------------------------------------------------

@bp.get("/calendar")
@host_required
def calendar():
    """Every slot of the host's own stations in one ISO week (``week=2026-W51``, default this week)
    or month (``month=2026-12``), by day, with its fill and pending approvals; htmx gets the
    ``calendar`` block. A bad period: 422 with the message, and this week."""
    from blueprints.menu import calendar as dates

    from . import calendar as host_calendar

    today = clock.today()
    status, period_error = 200, None
    try:
        period = dates.parse_period(request.args.get("week", ""), request.args.get("month", ""), today)
    except dates.PeriodError as error:
        period, period_error, status = dates.week_of(today), error, 422
    stations = services.host_stations(current_user)  # a host sees only their own stations
    view = host_calendar.host_slots(period, [station.id for station in stations])
    return render("host/calendar.html", "calendar", status=status, view=view, period_error=period_error,
                  today=today, this_week=dates.week_of(today), pending=host_calendar.pending_total(view),
                  stations=stations)


# -- feedback after the day (issue 15, item 5) -------------------------------------------------

@bp.get("/feedback")
@host_required
def feedback():
    """The ratings of the host's own stations' sessions, newest first, with their count and
    average; ``?station=<id>`` narrows to one of them (another station: 404)."""
    from blueprints.booking import feedback as booking_feedback
    from blueprints.core.params import parse_int

    stations = services.host_stations(current_user)
    own = {station.id for station in stations}
    asked = request.args.get("station", "")
    chosen = parse_int(asked) if asked else None
    if asked and chosen not in own:
        abort(404)
    result = booking_feedback.station_feedback([chosen] if chosen else own, _page(), current_app.config["PAGE_SIZE"])
    return render("host/feedback.html", "feedback_list", result=result, chosen=chosen, stations=stations)
