"""In-app notifications (and e-mail when SMTP is configured) about bookings.

A notification stores its kind and parameters; the text is rendered in the reader's language.
"""
from __future__ import annotations

import logging
import smtplib
import threading
from email.message import EmailMessage

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from blueprints.accounts.models import Role, User, station_hosts
from blueprints.core.extensions import db

from .models import Booking, Notification

log = logging.getLogger(__name__)

# kind -> who is told: "organisation" (its secretaries) or "hosts" (the station's hosts)
KINDS = {
    "confirmed": "organisation",
    "pending": "organisation",
    "waitlisted": "organisation",
    "approved": "organisation",
    "declined": "organisation",
    "promoted": "organisation",
    "cancelled_by_station": "organisation",
    "slot_changed": "organisation",
    "slot_cancelled": "organisation",
    "reapproval": "organisation",
    "new_pending": "hosts",
    "headcount_raised": "hosts",
    "cancelled_by_branch": "hosts",
}


def message_for(kind: str, params: dict) -> str:
    """The notification's sentence in the current language."""
    texts = {
        "confirmed": _("Your booking of %(package)s at %(station)s on %(when)s is confirmed."),
        "pending": _("Your booking of %(package)s at %(station)s on %(when)s awaits the station's approval."),
        "waitlisted": _("You are on the waitlist for %(package)s at %(station)s on %(when)s."),
        "approved": _("The station approved your booking of %(package)s on %(when)s."),
        "declined": _("The station declined your booking of %(package)s on %(when)s. Reason: %(reason)s"),
        "promoted": _("Places freed up: your waitlisted booking of %(package)s on %(when)s is now %(status)s."),
        "cancelled_by_station": _("The station cancelled your booking of %(package)s on %(when)s. Reason: %(reason)s"),
        "slot_changed": _("The slot of %(package)s you booked has changed: now %(when)s at %(station)s."),
        "slot_cancelled": _("The slot of %(package)s on %(when)s was cancelled by the station. Reason: %(reason)s"),
        "reapproval": _("You raised your booking of %(package)s on %(when)s from %(old)s to %(headcount)s people: "
                        "it awaits the station's approval again, and your places stay held meanwhile."),
        "new_pending": _("%(organisation)s asks to book %(package)s on %(when)s (%(headcount)s people)."),
        "headcount_raised": _("%(organisation)s raised its confirmed booking of %(package)s on %(when)s from "
                              "%(old)s to %(headcount)s people: please approve or decline it again."),
        "cancelled_by_branch": _("%(organisation)s cancelled its booking of %(package)s on %(when)s."),
    }
    template = texts.get(kind, kind)
    safe = {k: ("" if v is None else v) for k, v in params.items()}
    try:
        return template % safe
    except (KeyError, ValueError, TypeError):
        return template


def _recipients(kind: str, booking: Booking) -> list[User]:
    if KINDS.get(kind) == "hosts":
        query = (
            sa.select(User)
            .join(station_hosts, station_hosts.c.user_id == User.id)
            .where(station_hosts.c.station_id == booking.slot.station_id, User.active)
        )
    else:
        query = sa.select(User).where(
            User.organisation_id == booking.organisation_id,
            User.role == Role.SECRETARY,
            User.active,
        )
    return list(db.session.scalars(query))


def booking_params(booking: Booking, **extra) -> dict:
    from blueprints.core.templating import time_range

    slot = booking.slot
    with force_locale("zh_CN"):
        when = time_range(slot.starts_at, slot.ends_at)
    return {
        "package": slot.package.title,
        "station": slot.station.name,
        "when": when,
        "organisation": booking.organisation.name,
        "headcount": booking.headcount,
        "status": booking.status.label if hasattr(booking.status, "label") else "",
        **extra,
    }


def notify(kind: str, booking: Booking, **extra) -> list[Notification]:
    """Queue in-app notifications in the current transaction; mail after commit."""
    params = booking_params(booking, **extra)
    params["status"] = str(params["status"])
    created = []
    for user in _recipients(kind, booking):
        notification = Notification(user_id=user.id, booking=booking, kind=kind, params=params)
        db.session.add(notification)
        created.append(notification)
        if user.email:
            _queue_mail(user.email, kind, params)
    return created


def _queue_mail(address: str, kind: str, params: dict) -> None:
    app = current_app._get_current_object()
    if not app.config.get("SMTP_HOST"):
        return
    with force_locale("zh_CN"):
        body = message_for(kind, params)
    pending = db.session.info.setdefault("pending_mail", [])
    pending.append((address, body))
    # Listeners stay for the session's life: a once=True listener, once fired, still counts as
    # registered, so listening again was ignored and later commits of the session sent nothing.
    session = db.session()
    if not sa.event.contains(session, "after_commit", _send_after_commit):
        sa.event.listen(session, "after_commit", _send_after_commit)
        sa.event.listen(session, "after_rollback", _forget_mail)


def _forget_mail(session) -> None:
    """A rolled-back change must not be mailed by the session's next commit."""
    session.info.pop("pending_mail", None)


def _send_after_commit(session) -> None:
    mails = session.info.pop("pending_mail", [])
    if not mails:
        return
    app = current_app._get_current_object()
    thread = threading.Thread(target=_send_all, args=(app.config.copy(), mails), daemon=True)
    thread.start()


def _send_all(config: dict, mails: list[tuple[str, str]]) -> None:
    """Runs in a background thread so a slow or dead mail server never blocks a booking."""
    try:
        with smtplib.SMTP(config["SMTP_HOST"], config.get("SMTP_PORT") or 25, timeout=10) as smtp:
            for address, body in mails:
                message = EmailMessage()
                message["From"] = config.get("MAIL_FROM") or "partyday@localhost"
                message["To"] = address
                message["Subject"] = "主题党日预约通知"
                message.set_content(body)
                smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("could not send %d notification mail(s): %s", len(mails), exc)
