"""Calendar feeds, the single-booking .ics and the page that hands out the feed URLs."""
from __future__ import annotations

import os

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, user_logged_in

from blueprints.accounts.guards import role_required
from blueprints.accounts.models import Role
from blueprints.booking.capacity import availability_for
from blueprints.core.forms import EmptyForm
from blueprints.core.htmx import render, wants_fragment
from blueprints.core.i18n import in_default_language

from blueprints.core import clock
from blueprints.core.compression import matches_etag
from blueprints.core.urls import base_url, external_url, id_urls, webcal_url

from . import documents, ics, services
from .models import FeedKind

bp = Blueprint("feeds", __name__)

CALENDAR_TYPE = "text/calendar; charset=utf-8"


@bp.record_once
def _configure(state):
    state.app.config.setdefault(
        "CALENDAR_UID_DOMAIN", os.environ.get("CALENDAR_UID_DOMAIN") or ics.DEFAULT_UID_DOMAIN
    )
    from . import revalidation

    revalidation.install(state.app)
    user_logged_in.connect(_make_feed_addresses, state.app)


def _make_feed_addresses(app, user, **extra) -> None:
    """A login (a POST) makes the feed addresses the user may open, so that the calendar page,
    a GET, finds them and writes nothing. One made later (a host given a new station) is made
    by a button on that page."""
    services.make_missing_tokens(user)


def _link(endpoint: str, fallback: str = "menu.index", **values) -> str:
    if endpoint in current_app.view_functions:
        return external_url(endpoint, **values)
    return external_url(fallback)


def booking_link(booking) -> str:
    return _link("booking.detail", booking_id=booking.id)


def _links(endpoint: str, parameter: str):
    """``id -> absolute URL`` of ``endpoint`` with one url_for call for a whole feed."""
    if endpoint not in current_app.view_functions:
        fallback = external_url("menu.index")
        return lambda value: fallback
    return id_urls(endpoint, parameter, external=True)


def host_slot_link(slot) -> str:
    return _link("host.slot", fallback="host.dashboard" if "host.dashboard" in current_app.view_functions
                 else "menu.index", slot_id=slot.id)


def public_slot_link(slot) -> str:
    return _link("booking.slot", slot_id=slot.id)


def _calendar_response(body: bytes, filename: str, validator=None, response_class=None):
    response = (response_class or current_app.response_class)(body, content_type=CALENDAR_TYPE)
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    # Cache-Control: core/security.py decides (private, no-cache for feeds; no-store when logged in).
    response.headers["X-Content-Type-Options"] = "nosniff"
    if validator is not None:
        response.set_etag(validator.etag)
        if _last_modified_is_reliable(validator.last_modified):
            response.last_modified = validator.last_modified
    return response


def _last_modified_is_reliable(last_modified) -> bool:
    """A Last-Modified within the current second could be followed by another change in the
    same second that it cannot tell apart (RFC 9110 §8.8.2.2): send it only once that second is
    over, so that an If-Modified-Since can never hide a change. The ETag is always sent."""
    return clock.now().replace(microsecond=0) > last_modified


def not_modified(validator, req=None) -> bool:
    """If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2)."""
    req = req or request
    if req.if_none_match:
        return matches_etag(validator.etag, req)  # also in its gzip form
    since = req.if_modified_since
    return (since is not None and _last_modified_is_reliable(validator.last_modified)
            and validator.last_modified <= since)


def feed_document(feed: services.Feed) -> bytes:
    with in_default_language():  # calendars are shared; their texts do not follow ?lang=
        return _feed_document(feed)


def _feed_document(feed: services.Feed) -> bytes:
    if feed.kind is FeedKind.ORGANISATION:
        rows = services.organisation_event_inputs(feed.target_id)
        name = _("%(name)s · Party-day bookings", name=feed.name)
        link_of = _links("booking.detail", "booking_id")
        keyed = [(ics.booking_event_key(row, link_of(row[0])), row[0]) for row in rows]
        domain = ics.uid_domain()
        stale = [booking_id for key, booking_id in keyed if (domain, *key) not in ics.SERIALISED]
        loaded = services.bookings_for_events(stale)  # only the events that changed are built
        events = [(key, lambda booking_id=booking_id, key=key: ics.booking_event(
            loaded.get(booking_id) or services.bookings_for_events([booking_id])[booking_id], key[1]))
            for key, booking_id in keyed]
    elif feed.kind is FeedKind.STATION:
        slots, roster = services.station_slots(feed.target_id)
        totals = services.all_bookings_of_slots([s.id for s in slots])
        name = _("%(name)s · booked slots", name=feed.name)
        events = []
        for s in slots:
            link, sequence = host_slot_link(s), s.revision + sum(totals.get(s.id, (0, 0)))
            events.append((ics.host_slot_event_key(s, roster[s.id], sequence, link),
                           lambda s=s, link=link, sequence=sequence: ics.host_slot_event(
                               s, roster[s.id], sequence, link)))
    else:
        slots = services.public_slots(feed.target_id)
        places = availability_for([s.id for s in slots])
        changed = services.places_changed_at([s.id for s in slots])
        name = _("%(name)s · open slots", name=feed.name)
        events = []
        for s in slots:
            link, remaining = public_slot_link(s), places[s.id].remaining
            events.append((ics.public_slot_event_key(s, remaining, link, changed.get(s.id)),
                           lambda s=s, link=link, remaining=remaining: ics.public_slot_event(
                               s, remaining, link, changed.get(s.id))))
    return ics.render_keyed(name, events)


def not_modified_response(validator, response_class=None):
    response = _calendar_response(b"", "calendar.ics", validator, response_class)
    response.status_code = 304
    response.response = []
    return response


@bp.get("/feeds/<token>.ics")
def feed(token: str):
    if not token or len(token) > 64:
        abort(404)
    found = documents.document(token, base_url(), feed_document)
    if found is None:
        abort(404)
    if not_modified(found):
        return not_modified_response(found)
    return _calendar_response(found.body, "calendar.ics", found)


@bp.get("/bookings/<int:booking_id>.ics")
@login_required
def booking_ics(booking_id: int):
    booking = services.booking_for_calendar(current_user, booking_id)
    if booking is None:
        abort(404)
    with in_default_language():
        body = ics.render(
            f"{booking.slot.package.title} · {booking.slot.station.name}",
            [lambda: ics.booking_event(booking, booking_link(booking))],
            feed=False,
        )
    return _calendar_response(body, f"booking-{booking.id}.ics")


def _page(status: int = 200, notice: str | None = None):
    subscriptions = services.subscriptions_for(current_user, create=False)
    feeds = []
    for sub in subscriptions:
        if sub.token is None:
            feeds.append({"sub": sub})
            continue
        url = external_url("feeds.feed", token=sub.token)
        webcal = webcal_url(url)
        # The QR code holds the webcal:// form: a phone camera then opens a subscription (an
        # iPhone's Calendar asks "Subscribe?"), not a one-time import of the https:// document.
        feeds.append({"sub": sub, "url": url, "webcal": webcal, "qr": _qr_svg(webcal)})
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
    key = request.form.get("feed", "")
    first = any(sub.key == key and sub.token is None for sub in services.subscriptions_for(current_user, create=False))
    if not services.reset_token(current_user, key):
        abort(404)
    message = (_("The subscription address has been made: subscribe with it in your calendar app.") if first else
               _("A new address has been made. The old one no longer works: subscribe again with the new one."))
    if wants_fragment():
        return _page(notice=message)
    flash(message, "success")
    return redirect(url_for("feeds.calendar"))
