"""In-app notifications (and e-mail, as durable jobs, when SMTP is configured) about bookings.

A notification stores its kind and parameters; the text is rendered in the reader's language.
"""
from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from blueprints.accounts.models import Role, User
from blueprints.catalog.models import station_hosts
from blueprints.core.db import built_once
from blueprints.core.extensions import db
from blueprints.core.i18n import in_default_language
from blueprints.jobs import queue as jobs

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
    "moved": "organisation",
    "moved_out": "hosts",
    "moved_in": "hosts",
    "reminder": "organisation",
    "slot_reminder": "hosts",
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
        "moved": _("Your booking of %(package)s has moved from %(old_when)s at %(old_station)s to %(when)s at "
                   "%(station)s. It is now %(status)s."),
        "moved_out": _("%(organisation)s moved its booking of %(package)s on %(when)s (%(headcount)s people) to "
                       "%(new_when)s at %(new_station)s: its places on this slot are free again."),
        "moved_in": _("%(organisation)s moved its booking of %(package)s (%(headcount)s people) from %(old_when)s at "
                      "%(old_station)s to %(when)s at %(station)s. It is %(status)s."),
        "reminder": _("Reminder: %(package)s at %(station)s (%(address)s) on %(when)s, %(headcount)s people, "
                      "contact %(contact)s. Confirmation and check-in code: %(link)s"),
        "slot_reminder": _("Reminder: %(package)s on %(when)s at %(station)s has %(groups)s groups booked, "
                           "%(people)s people in all. Roster: %(link)s"),
    }
    template = texts.get(kind, kind)
    safe = {k: ("" if v is None else v) for k, v in params.items()}
    try:
        return template % safe
    except (KeyError, ValueError, TypeError):
        return template


@built_once
def _hosts_statement():
    return (
        sa.select(User)
        .join(station_hosts, station_hosts.c.user_id == User.id)
        .where(station_hosts.c.station_id == sa.bindparam("station_id"), User.active)
    )


@built_once
def _secretaries_statement():
    return sa.select(User).where(
        User.organisation_id == sa.bindparam("organisation_id"),
        User.role == Role.SECRETARY,
        User.active,
    )


def _recipients(kind: str, booking: Booking) -> list[User]:
    if KINDS.get(kind) == "hosts":
        return list(db.session.scalars(_hosts_statement(), {"station_id": booking.slot.station_id}))
    return list(db.session.scalars(_secretaries_statement(), {"organisation_id": booking.organisation_id}))


def booking_params(booking: Booking, **extra) -> dict:
    from blueprints.core.templating import time_range

    slot = booking.slot
    with in_default_language():
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
    """Tell the people ``kind`` is for about ``booking`` (see ``deliver``)."""
    params = booking_params(booking, **extra)
    params["status"] = str(params["status"])
    return deliver(_recipients(kind, booking), kind, params, booking)


def deliver(users: list[User], kind: str, params: dict, booking: Booking | None = None) -> list[Notification]:
    """In-app notifications in the current transaction, and a mail job for each recipient with
    an address (sent by the jobs consumer once the transaction commits; never if it rolls back)."""
    created = []
    for user in users:
        notification = Notification(user_id=user.id, booking=booking, kind=kind, params=params)
        db.session.add(notification)
        created.append((notification, user.email))
    if current_app.config.get("SMTP_HOST") and any(address for _n, address in created):
        db.session.flush()  # the notifications' ids name their mails
        for notification, address in created:
            if address:
                _enqueue_mail(notification, address)
    return [notification for notification, _address in created]


MAIL_SUBJECT = "主题党日预约通知"


def _enqueue_mail(notification: Notification, address: str) -> None:
    with in_default_language():
        body = message_for(notification.kind, notification.params)
    key = f"mail:notification:{notification.id}"
    jobs.enqueue("mail", key, {"to": address, "subject": MAIL_SUBJECT, "body": body, "key": key})


@jobs.handler("mail", writes=False)
def send_mail(payload: dict) -> None:
    """One notification mail. Raises when the server is down or refuses it: the job is retried
    with backoff. Its Message-ID comes from the job's key, so a copy re-sent after a consumer
    died between sending and recording it is recognisable as the same message."""
    config = current_app.config
    message = EmailMessage()
    message["From"] = config.get("MAIL_FROM") or "partyday@localhost"
    message["To"] = payload["to"]
    message["Subject"] = payload["subject"]
    message["Message-ID"] = f"<{payload['key'].replace(':', '.')}@{_mail_domain(config)}>"
    message.set_content(payload["body"])
    with smtplib.SMTP(config["SMTP_HOST"], config.get("SMTP_PORT") or 25, timeout=MAIL_TIMEOUT) as smtp:
        smtp.send_message(message)


MAIL_TIMEOUT = 10


def _mail_domain(config) -> str:
    sender = config.get("MAIL_FROM") or "partyday@localhost"
    return sender.rpartition("@")[2] or "localhost"
