"""Signed check-in URLs and their QR codes.

The QR code on a confirmed booking's page holds ``/host/check-in/<token>``; the token is the
booking id signed with the app's secret (itsdangerous), so nobody can forge one for another
booking. Opening it only does something for a host of the booking's station.
"""
from __future__ import annotations

from datetime import timedelta

import segno
from babel.dates import format_skeleton
from flask import current_app, url_for
from flask_babel import get_locale
from itsdangerous import BadSignature, URLSafeSerializer
from markupsafe import Markup

from blueprints.booking.models import Booking, BookingStatus
from blueprints.core import clock
from blueprints.core.urls import external_url

SALT = "host-check-in"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def checkin_token(booking: Booking) -> str:
    return _serializer().dumps({"b": booking.id})


def booking_id_from(token: str) -> int | None:
    try:
        data = _serializer().loads(token)
    except BadSignature:
        return None
    value = data.get("b") if isinstance(data, dict) else None
    return value if isinstance(value, int) else None


def checkin_url(booking: Booking, external: bool = True) -> str:
    if external:  # PUBLIC_URL's scheme and host (core/urls.py)
        return external_url("host.check_in", token=checkin_token(booking))
    return url_for("host.check_in", token=checkin_token(booking))


def checkin_qr_svg(booking: Booking) -> Markup:
    """The check-in URL as an inline SVG QR code (scales with CSS)."""
    qr = segno.make(checkin_url(booking), error="m")
    svg = qr.svg_inline(scale=6, border=2, dark="#1a1a1a", omitsize=True)
    return Markup(svg)


def shows_qr(booking: Booking) -> bool:
    """The branch's page shows its check-in code from the moment check-in opens
    (``Slot.check_in_opens_at``) to the end of the slot's day."""
    slot, now = booking.slot, clock.now()
    return (booking.status is BookingStatus.CONFIRMED and slot.check_in_is_open(now)
            and now < slot.check_in_opens_at + timedelta(days=1))


def opens_on(slot) -> str:
    """The day check-in opens, as the reader says it (12月5日 / Dec 5)."""
    return format_skeleton("MMMd", clock.to_local(slot.check_in_opens_at).date(), locale=str(get_locale()))
