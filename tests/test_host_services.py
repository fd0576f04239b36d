"""Host domain rules: slots, capacity, time changes, cancellation, series, approval races."""
import threading
from datetime import date, time, timedelta

import pytest
import sqlalchemy as sa

from blueprints.accounts.models import User
from blueprints.booking import services as booking_services
from blueprints.booking.models import Booking, BookingEvent, BookingStatus, Notification
from blueprints.catalog.models import Slot, SlotEvent, SlotStatus
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.host import recurrence, services
from blueprints.host.services import HostError, NotAllowed

from . import factories as f


@pytest.fixture
def scene(frozen_now):
    station = f.create_station(requires_approval=True)
    host = f.create_host(stations=[station])
    package = f.create_package(stations=[station])
    slot = f.create_slot(package=package, station=station, capacity=20)
    return station, host, package, slot


def events(slot, action):
    return db.session.scalars(sa.select(SlotEvent).where(SlotEvent.slot_id == slot.id, SlotEvent.action == action)).all()


def test_host_capacity_cannot_go_below_held_headcount(scene):
    _station, host, _package, slot = scene
    f.create_booking(slot=slot, headcount=8)
    f.create_booking(slot=slot, headcount=4, status=BookingStatus.PENDING)
    with pytest.raises(HostError) as error:
        services.change_capacity(host, slot.id, 11)
    assert error.value.field == "capacity" and "12" in error.value.message
    db.session.expire_all()
    assert db.session.get(Slot, slot.id).capacity == 20
    services.change_capacity(host, slot.id, 12)
    assert db.session.get(Slot, slot.id).capacity == 12
    assert events(slot, "capacity_changed")[0].actor_id == host.id


def test_host_raising_capacity_promotes_the_waitlist(scene):
    _station, host, _package, slot = scene
    f.create_booking(slot=slot, headcount=20)
    waiting = f.create_booking(slot=slot, headcount=5, status=BookingStatus.WAITLISTED)
    services.change_capacity(host, slot.id, 25)
    assert db.session.get(Booking, waiting.id).status is BookingStatus.PENDING


def test_other_station_host_cannot_touch_the_slot(scene):
    _station, _host, _package, slot = scene
    other = f.create_host()
    with pytest.raises(NotAllowed):
        services.change_capacity(other, slot.id, 50)
    with pytest.raises(NotAllowed):
        services.cancel_slot(other, slot.id, "下雨")
    with pytest.raises(NotAllowed):
        services.host_slot(other, slot.id)


def test_host_cancelling_a_slot_cancels_and_notifies_every_active_booking(scene):
    _station, host, _package, slot = scene
    secretary = f.create_secretary()
    confirmed = f.create_booking(slot=slot, organisation=secretary.organisation, headcount=5)
    pending = f.create_booking(slot=slot, headcount=3, status=BookingStatus.PENDING)
    declined = f.create_booking(slot=slot, headcount=3, status=BookingStatus.DECLINED)
    with pytest.raises(HostError):
        services.cancel_slot(host, slot.id, "  ")
    cancelled = services.cancel_slot(host, slot.id, "场地检修")
    assert {b.id for b in cancelled} == {confirmed.id, pending.id}
    db.session.expire_all()
    slot = db.session.get(Slot, slot.id)
    assert slot.status is SlotStatus.CANCELLED and slot.cancel_reason == "场地检修" and slot.revision == 1
    for booking_id in (confirmed.id, pending.id):
        booking = db.session.get(Booking, booking_id)
        assert booking.status is BookingStatus.CANCELLED and booking.revision == 1
        assert booking.events[-1].action == "slot_cancelled" and booking.events[-1].actor_id == host.id
    assert db.session.get(Booking, declined.id).status is BookingStatus.DECLINED
    note = db.session.scalar(sa.select(Notification).where(Notification.user_id == secretary.id))
    assert note.kind == "slot_cancelled" and note.params["reason"] == "场地检修"
    assert events(slot, "cancelled")[0].actor_id == host.id
    with pytest.raises(HostError):
        services.cancel_slot(host, slot.id, "again")


def test_host_moving_a_booked_slot_bumps_revisions_and_tells_the_branch(scene):
    _station, host, _package, slot = scene
    secretary = f.create_secretary()
    booking = f.create_booking(slot=slot, organisation=secretary.organisation, headcount=5)
    new_start = slot.starts_at + timedelta(days=1)
    services.edit_slot(host, slot.id, starts_at=new_start, ends_at=new_start + timedelta(hours=2),
                       capacity=20, max_groups=None, note="")
    db.session.expire_all()
    assert db.session.get(Slot, slot.id).revision == 1
    booking = db.session.get(Booking, booking.id)
    assert booking.revision == 1 and booking.status is BookingStatus.CONFIRMED
    assert booking.events[-1].action == "slot_changed"
    assert db.session.scalar(sa.select(Notification.kind).where(Notification.user_id == secretary.id)) == "slot_changed"
    assert events(slot, "edited")


def test_host_editing_only_the_note_does_not_bump_revisions(scene):
    _station, host, _package, slot = scene
    booking = f.create_booking(slot=slot, headcount=5)
    services.edit_slot(host, slot.id, starts_at=slot.starts_at, ends_at=slot.ends_at, capacity=20,
                       max_groups=None, note="带身份证")
    db.session.expire_all()
    assert db.session.get(Slot, slot.id).revision == 0 and db.session.get(Booking, booking.id).revision == 0


def test_host_close_and_reopen_are_recorded(scene):
    _station, host, _package, slot = scene
    services.set_open(host, slot.id, False)
    assert db.session.get(Slot, slot.id).status is SlotStatus.CLOSED
    services.set_open(host, slot.id, True)
    assert db.session.get(Slot, slot.id).status is SlotStatus.OPEN
    assert events(slot, "closed") and events(slot, "reopened")


def test_host_creates_a_one_off_slot_only_for_an_offered_package(scene):
    station, host, package, _slot = scene
    start = clock.now() + timedelta(days=3)
    slot = services.create_slot(host, station_id=station.id, package_id=package.id, starts_at=start,
                                ends_at=start + timedelta(hours=2), capacity=15)
    assert slot.id and events(slot, "created")[0].actor_id == host.id
    elsewhere = f.create_package()
    with pytest.raises(HostError) as error:
        services.create_slot(host, station_id=station.id, package_id=elsewhere.id, starts_at=start,
                             ends_at=start + timedelta(hours=2), capacity=15)
    assert error.value.field == "package"
    with pytest.raises(HostError) as error:
        services.create_slot(host, station_id=station.id, package_id=package.id, starts_at=start,
                             ends_at=start - timedelta(hours=1), capacity=15)
    assert error.value.field == "end"


def test_host_series_shares_a_series_id_and_skips_national_day(scene):
    station, host, package, _slot = scene
    rule = recurrence.Rule(kind=recurrence.WEEKLY, first_day=date(2027, 9, 27), last_day=date(2027, 10, 10),
                           times=(time(9, 0), time(14, 0)), duration_minutes=120, weekdays=(0, 1, 2, 3, 4))
    slots = services.create_series(host, station_id=station.id, package_id=package.id, rule=rule, capacity=30)
    days = {clock.to_local(s.starts_at).date() for s in slots}
    assert date(2027, 10, 1) not in days and date(2027, 9, 27) in days
    assert len({s.series_id for s in slots}) == 1 and slots[0].series_id
    assert len(slots) == 2 * len(days)


def _act_concurrently(app, host_ids, booking_id, action):
    """Each host acts from a thread of its own (own app context, session and connection)."""
    results = []
    barrier = threading.Barrier(len(host_ids))

    def run(host_id):
        with app.test_request_context():
            user = db.session.get(User, host_id)
            barrier.wait()
            try:
                if action == "approve":
                    booking_services.approve(user, booking_id)
                else:
                    booking_services.decline(user, booking_id, "名额已满")
                results.append("ok")
            except booking_services.BookingError as exc:
                results.append(exc.message)
            except Exception as exc:  # noqa: BLE001 - surfaced in the assertion
                results.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(host_id,)) for host_id in host_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    return results


@pytest.mark.parametrize("action", ["approve", "decline"])
def test_two_hosts_acting_at_once_only_one_succeeds(app, scene, action):
    station, host, _package, slot = scene
    second_host = f.create_host(stations=[station])
    booking = f.create_booking(slot=slot, headcount=5, status=BookingStatus.PENDING)
    host_ids = [host.id, second_host.id]
    db.session.commit()
    results = _act_concurrently(app, host_ids, booking.id, action)
    assert len(results) == 2 and results.count("ok") == 1, results
    other = next(r for r in results if r != "ok")
    assert "不再等待审核" in other or "no longer awaiting approval" in other, other
    db.session.rollback()  # a fresh snapshot that sees what the threads committed
    decided = db.session.scalars(sa.select(BookingEvent).where(
        BookingEvent.booking_id == booking.id, BookingEvent.action.in_(("approved", "declined")))).all()
    assert len(decided) == 1
