"""The quota rule (its admin pages are in catalogue/).

``quota_refusal`` is applied by the booking rules inside the booking transaction
(``booking.services.quota_refusal``, which counts the bookings): it returns a message when one
more booking would exceed a quota of the organisation, else None. A quota period (month,
quarter, year) is the one containing the slot's start date in Shanghai. Every booking of the
organisation counts except cancelled and declined ones.
"""
from __future__ import annotations

from datetime import date
from typing import Callable

import sqlalchemy as sa
from flask_babel import gettext as _

from blueprints.core import clock
from blueprints.core.db import built_once
from blueprints.core.extensions import db

from .models import Quota, QuotaPeriod


PERIOD_OF = {QuotaPeriod.MONTH: clock.month_of, QuotaPeriod.QUARTER: clock.quarter_of, QuotaPeriod.YEAR: clock.year_of}


def period_range(period: QuotaPeriod, day: date) -> tuple[date, date]:
    return PERIOD_OF[period](day)


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


def quota_refusal(organisation_id: int, category, day: date,
                  booked_between: Callable[[date, date], int]) -> str | None:
    """Why one more booking of ``category`` on ``day`` would exceed a quota of the organisation,
    or None; ``booked_between(start, end)``: how many of its bookings already count then."""
    quotas = db.session.scalars(_quotas_statement(), {"organisation_id": organisation_id, "category": category}).all()
    for quota in sorted(quotas, key=lambda q: list(QuotaPeriod).index(q.period)):
        start, end = period_range(quota.period, day)
        if booked_between(start, end) >= quota.max_bookings:
            return _message(quota, start, end)
    return None
