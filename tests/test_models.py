"""The database itself refuses bad rows, whatever the Python code does."""
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError

from blueprints.accounts.models import Role, User
from blueprints.booking.models import Booking, BookingStatus
from blueprints.core.extensions import db

from . import factories as f


def _insert_fails(statement):
    with pytest.raises((IntegrityError, StatementError)):
        db.session.execute(statement)
        db.session.commit()
    db.session.rollback()


def test_slot_must_end_after_it_starts():
    slot = f.create_slot()
    _insert_fails(sa.update(type(slot)).where(type(slot).id == slot.id).values(ends_at=slot.starts_at))


def test_slot_capacity_must_be_positive():
    slot = f.create_slot()
    _insert_fails(sa.update(type(slot)).where(type(slot).id == slot.id).values(capacity=0))


def test_slot_status_outside_the_enum_is_refused():
    slot = f.create_slot()
    _insert_fails(sa.text("UPDATE slots SET status = 'sold' WHERE id = :id").bindparams(id=slot.id))


def test_booking_headcount_must_be_positive():
    booking = f.create_booking()
    _insert_fails(sa.update(Booking).where(Booking.id == booking.id).values(headcount=0))


def test_one_active_booking_per_organisation_and_slot():
    booking = f.create_booking()
    duplicate = Booking(
        slot_id=booking.slot_id, organisation_id=booking.organisation_id, headcount=3,
        contact_name="x", contact_phone="13900000000", status=BookingStatus.PENDING,
    )
    db.session.add(duplicate)
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_a_cancelled_booking_does_not_block_a_new_one():
    booking = f.create_booking(status=BookingStatus.CANCELLED)
    again = Booking(
        slot_id=booking.slot_id, organisation_id=booking.organisation_id, headcount=3,
        contact_name="x", contact_phone="13900000000", status=BookingStatus.CONFIRMED,
    )
    db.session.add(again)
    db.session.commit()
    assert again.id


def test_package_group_sizes_must_be_ordered():
    package = f.create_package()
    _insert_fails(sa.update(type(package)).where(type(package).id == package.id).values(max_group_size=0))


def test_secretary_without_organisation_is_refused():
    user = f.create_secretary()
    _insert_fails(sa.update(User).where(User.id == user.id).values(organisation_id=None))


def test_station_names_are_unique():
    station = f.create_station()
    _insert_fails(sa.insert(type(station)).values(name=station.name))


def test_times_are_stored_and_returned_as_aware_utc():
    slot = f.create_slot()
    starts = slot.starts_at
    db.session.expire_all()
    reloaded = db.session.get(type(slot), slot.id)
    assert reloaded.starts_at.tzinfo is not None
    assert reloaded.starts_at == starts
    assert reloaded.ends_at - reloaded.starts_at == timedelta(hours=2)


def test_naive_datetimes_are_refused():
    from datetime import datetime

    slot = f.create_slot()
    slot.starts_at = datetime(2026, 12, 1, 9, 0)
    with pytest.raises(StatementError):
        db.session.commit()
    db.session.rollback()


def test_passwords_are_hashed_with_scrypt():
    user = f.create_user(Role.ADMIN)
    assert user.password_hash.startswith("scrypt:")
    assert user.check_password(f.PASSWORD)
    assert not user.check_password("wrong")
