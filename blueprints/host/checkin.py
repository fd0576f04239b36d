"""Signed check-in URLs and their QR codes.

The QR code on a confirmed booking's page holds ``/host/check-in/<token>``; the token is the
booking id signed with the app's secret (itsdangerous), so nobody can forge one for another
booking. Opening it only does something for a host of the booking's station.
"""
from __future__ import annotations

import segno
from flask import current_app, url_for
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


def is_slot_day(booking: Booking) -> bool:
    return clock.to_local(booking.slot.starts_at).date() == clock.today()


def shows_qr(booking: Booking) -> bool:
    return booking.status is BookingStatus.CONFIRMED and is_slot_day(booking)
