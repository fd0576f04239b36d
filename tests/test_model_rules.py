"""The rules that live on the models (issue 13): each in one place, used by services and pages alike.

``Slot.booking_closes_at`` / ``cancel_deadline`` / ``is_changeable`` / ``takes_bookings``,
``Booking.cancel_refusal`` / ``change_refusal`` / ``leaving_refusal`` and their ``can_*``,
``User.runs_station``. The service tests check that the services refuse through them; these
check the rules themselves, role by role and on both sides of every deadline.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from blueprints.booking import services
from blueprints.booking.models import OPEN_STATUSES, BookingStatus
from blueprints.catalog.models import SlotStatus
from blueprints.core.extensions import db

from . import factories as f
from .conftest import FROZEN_NOW

START = FROZEN_NOW + timedelta(days=5)


@pytest.fixture
def scene():
    station = f.create_station(phone="021-64000000", booking_cutoff_hours=24, cancel_deadline_hours=48)
    other_station = f.create_station()
    slot = f.create_slot(station=station, package=f.create_package(stations=[station]), starts_at=START)
    secretary = f.create_secretary()
    booking = f.create_booking(slot=slot, organisation=secretary.organisation)
    return {
        "slot": slot, "booking": booking, "secretary": secretary,
        "other_secretary": f.create_secretary(),
        "host": f.create_host(stations=[station]),
        "other_host": f.create_host(stations=[other_station]),
        "admin": f.create_admin(),
    }


def test_the_slots_deadlines_come_from_its_stations_hours(scene):
    slot = scene["slot"]
    assert slot.booking_closes_at == START - timedelta(hours=24)
    assert slot.cancel_deadline == START - timedelta(hours=48)


def test_a_slot_takes_bookings_while_open_and_until_its_cut_off_inclusive(scene):
    slot = scene["slot"]
    assert slot.takes_bookings(slot.booking_closes_at)
    assert not slot.takes_bookings(slot.booking_closes_at + timedelta(seconds=1))
    slot.status = SlotStatus.CLOSED
    assert not slot.takes_bookings(FROZEN_NOW)


@pytest.mark.parametrize("status,changeable", [(SlotStatus.OPEN, True), (SlotStatus.CLOSED, True),
                                               (SlotStatus.CANCELLED, False)])
def test_only_a_cancelled_slot_is_final(scene, status, changeable):
    scene["slot"].status = status
    assert scene["slot"].is_changeable is changeable


@pytest.mark.parametrize("role,runs", [("secretary", False), ("host", True), ("other_host", False), ("admin", True)])
def test_the_stations_hosts_and_administrators_run_a_station(scene, role, runs):
    assert scene[role].runs_station(scene["slot"].station_id) is runs


@pytest.mark.parametrize("role,allowed", [("secretary", True), ("other_secretary", False), ("host", True),
                                          ("other_host", False), ("admin", True)])
def test_cancel_by_role_the_own_branch_and_whoever_runs_the_station(scene, role, allowed):
    assert scene["booking"].can_cancel(scene[role], FROZEN_NOW) is allowed


def test_the_branch_cancels_online_until_the_deadline_and_then_is_told_whom_to_call(scene):
    booking, secretary = scene["booking"], scene["secretary"]
    deadline = booking.slot.cancel_deadline
    assert booking.cancel_refusal(secretary, deadline) is None
    refusal = booking.cancel_refusal(secretary, deadline + timedelta(seconds=1))
    assert "48" in refusal and booking.slot.station.name in refusal and "021-64000000" in refusal
    # The station and the district may still cancel after it.
    assert booking.can_cancel(scene["host"], deadline + timedelta(hours=1))
    assert booking.can_cancel(scene["admin"], deadline + timedelta(hours=1))


@pytest.mark.parametrize("status", list(BookingStatus))
def test_only_an_open_booking_can_be_cancelled_changed_or_moved(scene, status):
    booking = scene["booking"]
    booking.status = status
    is_open = status in OPEN_STATUSES
    assert booking.is_open is is_open
    assert booking.can_cancel(scene["host"], FROZEN_NOW) is is_open
    assert booking.can_change(scene["secretary"]) is is_open
    assert booking.can_move(scene["secretary"], FROZEN_NOW) is is_open


@pytest.mark.parametrize("role", ["other_secretary", "host", "admin"])
def test_only_the_own_branch_changes_the_headcount_or_moves_the_booking(scene, role):
    booking = scene["booking"]
    assert booking.change_refusal(scene[role]) == "只有预约组织可以修改参加人数。"
    assert not booking.can_move(scene[role], FROZEN_NOW)


def test_an_inactive_secretary_is_not_her_branch(scene):
    scene["secretary"].active = False
    assert not scene["booking"].can_cancel(scene["secretary"], FROZEN_NOW)
    assert not scene["booking"].can_change(scene["secretary"])


def test_moving_out_closes_with_the_cancellation_deadline(scene):
    booking = scene["booking"]
    deadline = booking.slot.cancel_deadline
    assert booking.leaving_refusal(deadline) is None
    assert "021-64000000" in booking.leaving_refusal(deadline + timedelta(seconds=1))


def test_the_cancel_service_refuses_with_the_models_words(scene, frozen_now):
    booking = scene["booking"]
    frozen_now.set(booking.slot.cancel_deadline + timedelta(minutes=1))
    expected = booking.cancel_refusal(scene["secretary"], frozen_now.now)
    with pytest.raises(services.BookingError) as refused:
        services.cancel(scene["secretary"], booking.id)
    assert refused.value.message == expected
    assert db.session.get(type(booking), booking.id).status is BookingStatus.CONFIRMED
