"""Calendar feeds, the single-booking .ics and the page that hands out the feed URLs."""
from __future__ import annotations

import os
from email.utils import format_datetime

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_babel import force_locale, gettext as _
from flask_login import current_user, login_required

from blueprints.accounts.guards import role_required
from blueprints.accounts.models import Role
from blueprints.booking.capacity import availability_for
from blueprints.core.forms import EmptyForm
from blueprints.core.htmx import render, wants_fragment

from . import ics, services, validator_cache
from .models import FeedKind

bp = Blueprint("feeds", __name__)

CALENDAR_TYPE = "text/calendar; charset=utf-8"


@bp.record_once
def _configure(state):
    state.app.config.setdefault(
        "CALENDAR_UID_DOMAIN", os.environ.get("CALENDAR_UID_DOMAIN") or ics.DEFAULT_UID_DOMAIN
    )
    state.app.config.setdefault("FEED_VALIDATOR_CACHE", os.environ.get("FEED_VALIDATOR_CACHE", "1") != "0")
    validator_cache.install(state.app)


def _link(endpoint: str, fallback: str = "menu.index", **values) -> str:
    if endpoint in current_app.view_functions:
        return url_for(endpoint, _external=True, **values)
    return url_for(fallback, _external=True)


def booking_link(booking) -> str:
    return _link("booking.detail", booking_id=booking.id)


def host_slot_link(slot) -> str:
    return _link("host.slot", fallback="host.dashboard" if "host.dashboard" in current_app.view_functions
                 else "menu.index", slot_id=slot.id)


def public_slot_link(slot) -> str:
    return _link("booking.slot", slot_id=slot.id)


def _calendar_response(body: bytes, filename: str, validator=None):
    response = current_app.response_class(body, content_type=CALENDAR_TYPE)
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.headers["Cache-Control"] = "private, max-age=0, must-revalidate"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if validator is not None:
        response.set_etag(validator.etag)
        response.last_modified = validator.last_modified
    return response


def _not_modified(validator) -> bool:
    """If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2)."""
    if request.if_none_match:
        return request.if_none_match.contains(validator.etag) or request.if_none_match.star_tag
    since = request.if_modified_since
    return since is not None and validator.last_modified <= since


def feed_document(feed: services.Feed) -> bytes:
    with force_locale("zh_CN"):  # calendars are shared; their texts do not follow ?lang=
        return _feed_document(feed)


def _feed_document(feed: services.Feed) -> bytes:
    if feed.kind is FeedKind.ORGANISATION:
        bookings = services.organisation_bookings(feed.target_id)
        name = _("%(name)s · Party-day bookings", name=feed.name)
        events = [lambda b=b: ics.booking_event(b, booking_link(b)) for b in bookings]
    elif feed.kind is FeedKind.STATION:
        slots, roster = services.station_slots(feed.target_id)
        totals = services.all_bookings_of_slots([s.id for s in slots])
        name = _("%(name)s · booked slots", name=feed.name)
        events = [
            lambda s=s: ics.host_slot_event(
                s, roster[s.id], s.revision + sum(totals.get(s.id, (0, 0))), host_slot_link(s))
            for s in slots
        ]
    else:
        slots = services.public_slots(feed.target_id)
        places = availability_for([s.id for s in slots])
        name = _("%(name)s · open slots", name=feed.name)
        events = [lambda s=s: ics.public_slot_event(s, places[s.id].remaining, public_slot_link(s))
                  for s in slots]
    return ics.render(name, events)


def _not_modified_response(validator):
    response = _calendar_response(b"", "calendar.ics", validator)
    response.status_code = 304
    response.response = []
    return response


@bp.get("/feeds/<token>.ics")
def feed(token: str):
    if request.if_none_match or request.if_modified_since:
        cached = validator_cache.cached_validator(token, request.host_url)
        if cached is not None and _not_modified(cached):
            return _not_modified_response(cached)
    found, validator = validator_cache.resolve_and_validate(token, request.host_url)
    if found is None:
        abort(404)
    if _not_modified(validator):
        return _not_modified_response(validator)
    return _calendar_response(feed_document(found), "calendar.ics", validator)


@bp.get("/bookings/<int:booking_id>.ics")
@login_required
def booking_ics(booking_id: int):
    booking = services.booking_for_calendar(current_user, booking_id)
    if booking is None:
        abort(404)
    with force_locale("zh_CN"):
        body = ics.render(
            f"{booking.slot.package.title} · {booking.slot.station.name}",
            [lambda: ics.booking_event(booking, booking_link(booking))],
            feed=False,
        )
    return _calendar_response(body, f"booking-{booking.id}.ics")


def _page(status: int = 200, notice: str | None = None):
    subscriptions = services.subscriptions_for(current_user)
    feeds = []
    for sub in subscriptions:
        url = url_for("feeds.feed", token=sub.token, _external=True)
        feeds.append({"sub": sub, "url": url, "webcal": "webcal://" + url.split("://", 1)[1],
                      "qr": _qr_svg(url)})
    return render("feeds/calendar.html", "feeds", status=status, feeds=feeds,
                  form=EmptyForm(), notice=notice)


def _qr_svg(url: str) -> str:
    import segno

    return segno.make(url, error="m").svg_inline(scale=4, border=2, title=url, svgclass="qr", lineclass=None)


@bp.get("/account/calendar")
@role_required(Role.SECRETARY, Role.HOST)
def calendar():
    return _page()


@bp.post("/account/calendar/reset")
@role_required(Role.SECRETARY, Role.HOST)
def reset():
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    if not services.reset_token(current_user, request.form.get("feed", "")):
        abort(404)
    message = _("A new address has been made. The old one no longer works: subscribe again with the new one.")
    if wants_fragment():
        return _page(notice=message)
    flash(message, "success")
    return redirect(url_for("feeds.calendar"))
