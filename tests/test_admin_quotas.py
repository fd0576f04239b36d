"""Quotas: the booking rules refuse a booking beyond an organisation's limit per period and category."""
from datetime import datetime

import pytest

from blueprints.booking import services
from blueprints.booking.models import BookingStatus
from blueprints.booking.services import quota_refusal
from blueprints.catalog.models import Category
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.quotas.models import Quota, QuotaPeriod

from . import factories as f


def at(y, m, d, hour=9):
    return clock.local_datetime(datetime(y, m, d).date(), hour)


def quota(org, period=QuotaPeriod.QUARTER, category=Category.THEORY, max_bookings=2):
    db.session.add(Quota(organisation_id=org.id, category=category, period=period, max_bookings=max_bookings))
    db.session.commit()


def theory_slot(when, category=Category.THEORY):
    return f.create_slot(package=f.create_package(category=category), starts_at=when)


def test_no_quota_means_no_refusal(frozen_now):
    org = f.create_organisation()
    f.create_booking(slot=theory_slot(at(2026, 12, 1)), organisation=org)
    assert quota_refusal(org.id, theory_slot(at(2026, 12, 2))) is None


@pytest.mark.parametrize("status,counts", [
    (BookingStatus.CONFIRMED, True), (BookingStatus.PENDING, True), (BookingStatus.WAITLISTED, True),
    (BookingStatus.ATTENDED, True), (BookingStatus.NO_SHOW, True),
    (BookingStatus.CANCELLED, False), (BookingStatus.DECLINED, False),
])
def test_which_booking_states_count_towards_the_quota(frozen_now, status, counts):
    org = f.create_organisation()
    quota(org, max_bookings=1)
    f.create_booking(slot=theory_slot(at(2026, 11, 2)), organisation=org, status=status)
    refusal = quota_refusal(org.id, theory_slot(at(2026, 12, 20)))
    assert (refusal is not None) is counts


def test_quarter_quota_message_in_chinese_names_limit_and_period(frozen_now):
    org = f.create_organisation()
    quota(org, max_bookings=2)
    f.create_booking(slot=theory_slot(at(2026, 10, 5)), organisation=org)
    f.create_booking(slot=theory_slot(at(2026, 11, 5)), organisation=org)
    message = quota_refusal(org.id, theory_slot(at(2026, 12, 5)))
    assert message is not None
    assert "每季度" in message and "2" in message and "理论学习" in message and "2026-10-01" in message
    # The next quarter (by the slot's date in Shanghai) starts afresh.
    assert quota_refusal(org.id, theory_slot(at(2027, 1, 1, 0))) is None
    # Other categories and other organisations are not limited.
    assert quota_refusal(org.id, theory_slot(at(2026, 12, 5), Category.PRACTICE)) is None
    assert quota_refusal(f.create_organisation().id, theory_slot(at(2026, 12, 5))) is None


@pytest.mark.parametrize("period,other_day,refused", [
    (QuotaPeriod.MONTH, (2026, 12, 1), False),
    (QuotaPeriod.MONTH, (2026, 11, 30), True),
    (QuotaPeriod.YEAR, (2026, 1, 10), True),
    (QuotaPeriod.YEAR, (2027, 1, 10), False),
])
def test_month_and_year_periods(frozen_now, period, other_day, refused):
    org = f.create_organisation()
    quota(org, period=period, max_bookings=1)
    f.create_booking(slot=theory_slot(at(2026, 11, 3)), organisation=org)
    assert (quota_refusal(org.id, theory_slot(at(*other_day))) is not None) is refused


def test_exclude_booking_id_lets_an_existing_booking_be_changed(frozen_now):
    org = f.create_organisation()
    quota(org, max_bookings=1)
    booking = f.create_booking(slot=theory_slot(at(2026, 12, 3)), organisation=org)
    slot = theory_slot(at(2026, 12, 4))
    assert quota_refusal(org.id, slot) is not None
    assert quota_refusal(org.id, slot, exclude_booking_id=booking.id) is None


def test_secretary_booking_refused_by_quota_through_booking_rules(frozen_now):
    secretary = f.create_secretary()
    quota(secretary.organisation, max_bookings=1)
    request = services.BookingRequest(headcount=5, contact_name="王书记", contact_phone="13900000000")
    services.book(secretary, theory_slot(at(2026, 12, 1)).id, request)
    second = theory_slot(at(2026, 12, 8))
    with pytest.raises(services.BookingError) as refused:
        services.book(secretary, second.id, request)
    assert "每季度最多" in refused.value.message
    assert db.session.scalar(db.select(db.func.count()).select_from(
        db.metadata.tables["bookings"]).where(db.text(f"slot_id = {second.id}"))) == 0
