"""The city-scale loader (`flask demo load --scale city`) at a tiny factor: counts and every rule."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from blueprints.accounts.models import Organisation, User
from blueprints.booking import services
from blueprints.booking.models import HOLDING_STATUSES, Booking, BookingEvent, BookingStatus
from blueprints.catalog.models import Package, Slot, SlotStatus, Station
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.demo.city import (
    FEED_ORGANISATION_ID,
    RUSH_SERIES,
    RUSH_SLOTS,
    CityCounts,
    CityDataError,
    load_city,
)
from blueprints.feeds import services as feed_services

from . import factories

FACTOR = 0.002  # 200 slots, 600 bookings


@pytest.fixture
def city():
    return load_city(FACTOR)


def test_loads_the_counts_of_the_factor(city):
    expected = CityCounts.for_factor(FACTOR)
    assert city["reused"] is False
    for name in ("stations", "packages", "slots", "organisations", "bookings"):
        assert city[name] == getattr(expected, name), name
    count = lambda model: db.session.scalar(sa.select(sa.func.count()).select_from(model))  # noqa: E731
    assert count(User) == 1 + expected.stations + expected.organisations
    assert count(BookingEvent) >= expected.bookings


def test_no_slot_is_over_capacity_or_over_its_group_limit(city):
    holding = Booking.status.in_(HOLDING_STATUSES)
    rows = db.session.execute(
        sa.select(Slot.capacity, Slot.max_groups,
                  sa.func.coalesce(sa.func.sum(sa.case((holding, Booking.headcount), else_=0)), 0),
                  sa.func.count(sa.case((holding, Booking.id))))
        .outerjoin(Booking, Booking.slot_id == Slot.id).group_by(Slot.id, Slot.capacity, Slot.max_groups)
    ).all()
    assert len(rows) == city["slots"]
    for capacity, max_groups, people, groups in rows:
        assert people <= capacity
        assert max_groups is None or groups <= max_groups


def test_one_booking_per_organisation_and_slot_group_sizes_fit_and_every_booking_has_its_history(city):
    duplicates = db.session.execute(
        sa.select(Booking.slot_id, Booking.organisation_id).group_by(Booking.slot_id, Booking.organisation_id)
        .having(sa.func.count() > 1)
    ).all()
    assert duplicates == []
    misfits = db.session.scalar(
        sa.select(sa.func.count()).select_from(Booking).join(Slot, Slot.id == Booking.slot_id)
        .join(Package, Package.id == Slot.package_id)
        .where(sa.or_(Booking.headcount < Package.min_group_size, Booking.headcount > Package.max_group_size))
    )
    assert misfits == 0
    without_creation = db.session.scalar(
        sa.select(sa.func.count()).select_from(Booking).where(
            ~sa.select(BookingEvent.id).where(BookingEvent.booking_id == Booking.id,
                                              BookingEvent.action == "created").exists())
    )
    assert without_creation == 0
    last_event_disagrees = db.session.scalar(
        sa.select(sa.func.count()).select_from(Booking).where(
            sa.select(BookingEvent.to_status).where(BookingEvent.booking_id == Booking.id)
            .order_by(BookingEvent.id.desc()).limit(1).scalar_subquery() != Booking.status)
    )
    assert last_event_disagrees == 0


def test_the_feed_organisation_sees_all_its_bookings_and_the_rush_slots_are_empty(city):
    feed_bookings = feed_services.organisation_bookings(FEED_ORGANISATION_ID)
    own = db.session.scalar(sa.select(sa.func.count(Booking.id)).where(
        Booking.organisation_id == FEED_ORGANISATION_ID))
    assert len(feed_bookings) == own > 0
    rush = db.session.scalars(sa.select(Slot).where(Slot.series_id == RUSH_SERIES)).all()
    assert len(rush) == RUSH_SLOTS
    for slot in rush:
        assert slot.status is SlotStatus.OPEN and slot.starts_at > clock.now()
        assert services.slot_refusal(slot) is None
        assert db.session.scalar(sa.select(sa.func.count(Booking.id)).where(Booking.slot_id == slot.id)) == 0


def test_the_application_books_on_top_of_the_bulk_data(city):
    """Sequences moved past the explicit ids: the booking rules insert new rows."""
    slot = db.session.scalar(sa.select(Slot).where(Slot.series_id == RUSH_SERIES).order_by(Slot.id))
    secretary = db.session.scalar(sa.select(User).where(User.username == "sec2"))
    booking = services.book(secretary, slot.id, services.BookingRequest(5, "书记2", "13900000002"))
    assert booking.status is BookingStatus.CONFIRMED
    assert booking.id == city["bookings"] + 1
    assert secretary.check_password("partyday")


def test_loading_again_reuses_and_another_factor_replaces(city):
    again = load_city(FACTOR)
    assert again["reused"] is True
    assert again["bookings"] == city["bookings"]
    bigger = load_city(FACTOR * 2)
    assert bigger["reused"] is False
    assert bigger["slots"] == CityCounts.for_factor(FACTOR * 2).slots
    assert db.session.scalar(sa.select(sa.func.count(Organisation.id))) == bigger["organisations"]


def test_refuses_a_database_with_other_data():
    factories.create_station()
    with pytest.raises(CityDataError):
        load_city(FACTOR)
    assert db.session.scalar(sa.select(sa.func.count(Station.id))) == 1


def test_cli_scale_city(app):
    result = app.test_cli_runner().invoke(args=["demo", "load", "--scale", "city", "--factor", str(FACTOR)])
    assert result.exit_code == 0, result.output
    assert "city data loaded" in result.output
    result = app.test_cli_runner().invoke(args=["demo", "load", "--scale", "city", "--factor", str(FACTOR)])
    assert "reused" in result.output
