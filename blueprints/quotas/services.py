"""The quota rule (its admin pages are in catalogue/).

``quota_refusal`` is called by the booking rules inside the booking transaction; it returns a
message when booking one more ``slot`` would exceed a quota of ``organisation``, else None.
A quota period (month, quarter, year) is the one containing the slot's start date in Shanghai.
Every booking of the organisation counts except cancelled and declined ones.
"""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from flask_babel import gettext as _

from blueprints.booking.models import ENDED_STATUSES, Booking
from blueprints.catalog.models import Package, Slot
from blueprints.core import clock
from blueprints.core.db import built_once
from blueprints.core.extensions import db

from .models import Quota, QuotaPeriod


PERIOD_OF = {QuotaPeriod.MONTH: clock.month_of, QuotaPeriod.QUARTER: clock.quarter_of, QuotaPeriod.YEAR: clock.year_of}


def period_range(period: QuotaPeriod, day: date) -> tuple[date, date]:
    return PERIOD_OF[period](day)


def bookings_in_period(organisation_id: int, category, start: date, end: date,
                       exclude_booking_id: int | None = None) -> int:
    lower, upper = clock.local_bounds(start, end)
    query = (
        sa.select(sa.func.count(Booking.id))
        .join(Slot, Slot.id == Booking.slot_id)
        .join(Package, Package.id == Slot.package_id)
        .where(
            Booking.organisation_id == organisation_id,
            Booking.status.not_in(ENDED_STATUSES),
            Package.category == category,
            Slot.starts_at >= lower,
            Slot.starts_at < upper,
        )
    )
    if exclude_booking_id is not None:
        query = query.where(Booking.id != exclude_booking_id)
    return db.session.scalar(query) or 0


def _message(quota: Quota, start: date, end: date) -> str:
    params = {"max": quota.max_bookings, "category": quota.category.label,
              "start": start.isoformat(), "end": end.isoformat()}
    if quota.period is QuotaPeriod.MONTH:
        return _("Your organisation may book at most %(max)s %(category)s packages per month "
                 "(%(start)s to %(end)s) and has reached this limit.", **params)
    if quota.period is QuotaPeriod.QUARTER:
        return _("Your organisation may book at most %(max)s %(category)s packages per quarter "
                 "(%(start)s to %(end)s) and has reached this limit.", **params)
    return _("Your organisation may book at most %(max)s %(category)s packages per year "
             "(%(start)s to %(end)s) and has reached this limit.", **params)


@built_once
def _quotas_statement():
    return sa.select(Quota).where(Quota.organisation_id == sa.bindparam("organisation_id"),
                                  Quota.category == sa.bindparam("category"))


def quota_refusal(organisation_id: int, slot, exclude_booking_id: int | None = None) -> str | None:
    category = slot.package.category
    quotas = db.session.scalars(_quotas_statement(), {"organisation_id": organisation_id, "category": category}).all()
    day = clock.to_local(slot.starts_at).date()
    for quota in sorted(quotas, key=lambda q: list(QuotaPeriod).index(q.period)):
        start, end = period_range(quota.period, day)
        if bookings_in_period(organisation_id, category, start, end, exclude_booking_id) >= quota.max_bookings:
            return _message(quota, start, end)
    return None
