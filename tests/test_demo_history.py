"""The demo district's past quarter (blueprints/demo/history.py): sessions attended, no-shows and
cancellations made by the booking services with the clock set back, so the statistics of
`make run` show real numbers; loaded once; full street addresses for the demo stations."""
import re
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from blueprints.accounts.models import Organisation, User
from blueprints.admin import stats as stats_module
from blueprints.booking.models import Booking, BookingEvent, BookingStatus, Notification
from blueprints.catalog.models import Slot, SlotEvent, Station
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.demo import data
from blueprints.demo.history import HISTORY_DAYS, quiet_organisations
from blueprints.demo.loader import load_demo


def _past_bookings(now):
    return db.session.scalars(
        sa.select(Booking).join(Slot, Slot.id == Booking.slot_id).where(Slot.ends_at < now)
    ).all()


def _row_counts():
    return {model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (Slot, SlotEvent, Booking, BookingEvent, Notification, Station, User)}


@pytest.fixture
def demo(frozen_now):
    load_demo(branches=12)
    return frozen_now.now


def test_past_quarter_has_attended_no_show_and_cancelled_bookings(demo):
    past = _past_bookings(demo)
    by_status = Counter(b.status for b in past)
    assert by_status[BookingStatus.ATTENDED] >= 20
    assert by_status[BookingStatus.NO_SHOW] >= 3
    assert by_status[BookingStatus.CANCELLED] >= 3
    # Settled, as `flask bookings settle` leaves them: nothing of an ended slot waits any more.
    assert by_status[BookingStatus.CONFIRMED] == by_status[BookingStatus.PENDING] == 0
    first = min(b.slot.starts_at for b in past)
    assert demo - timedelta(days=HISTORY_DAYS + 1) <= first < demo - timedelta(days=HISTORY_DAYS - 14)
    for b in past:
        if b.status is BookingStatus.ATTENDED:
            assert 0 < b.attended_headcount <= b.headcount and b.checked_in_at is not None
            assert b.slot.check_in_opens_at <= b.checked_in_at <= b.slot.ends_at


def test_every_past_booking_has_the_event_history_the_services_write(demo):
    past = _past_bookings(demo)
    for b in past:
        events = sorted(b.events, key=lambda e: e.id)
        assert events[0].action == "created" and events[0].from_status is None
        assert events[0].actor_id is not None and events[0].at == b.created_at
        assert events[0].at < b.slot.starts_at - timedelta(days=1)  # before the booking cut-off
        assert events[-1].to_status is b.status
        assert [e.at for e in events] == sorted(e.at for e in events)
        for before, after in zip(events, events[1:]):
            assert after.from_status is before.to_status
        actions = [e.action for e in events]
        if b.slot.station.requires_approval and b.status is not BookingStatus.CANCELLED:
            assert actions[1] in ("approved", "declined")
        if b.status is BookingStatus.ATTENDED:
            assert actions[-1] == "checked_in" and events[-1].detail == str(b.attended_headcount)
        if b.status is BookingStatus.NO_SHOW:
            assert actions[-1] == "no_show" and events[-1].at >= b.slot.ends_at
        if b.status is BookingStatus.CANCELLED:
            assert actions[-1] == "cancelled" and events[-1].actor_id == b.created_by_id
    slot_ids = {b.slot_id for b in past}
    created = db.session.scalars(sa.select(SlotEvent).where(SlotEvent.slot_id.in_(slot_ids),
                                                            SlotEvent.action == "created")).all()
    assert {e.slot_id for e in created} == slot_ids  # each past slot was made by its host
    assert all(e.actor_id is not None and e.at < e.slot.starts_at for e in created)
    # The past quarter's messages were read back then: no demo inbox full of old news.
    unread = db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.booking_id.in_([b.id for b in past]), Notification.read_at.is_(None)))
    assert unread == 0


def test_statistics_of_the_current_quarter_show_real_numbers(demo):
    start, end = stats_module.default_period()
    result = stats_module.compute(stats_module.StatsFilters(date_from=start, date_to=end))
    a = result.attendance
    assert a.attended > 0 and a.no_show > 0 and a.attendance_rate is not None
    assert all(r.bookings > 0 and r.attended_participants > 0 for r in result.categories)
    assert all(r.attended > 0 for r in result.stations)  # every demo station has held sessions
    past_weeks = [w for w in result.weeks if w.week_start + timedelta(days=7) <= clock.today()]
    assert sum(1 for w in past_weeks if w.bookings) >= len(past_weeks) - 2
    # Some branches have held no themed Party day this quarter (and never booked in the demo).
    organisations = db.session.scalars(sa.select(Organisation).order_by(Organisation.id)).all()
    quiet = quiet_organisations(organisations)
    assert len(quiet) == 3
    uncovered = {o.name for o in result.uncovered}
    assert {o.name for o in quiet} <= uncovered and result.uncovered_total < len(organisations)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Booking).where(
        Booking.organisation_id.in_([o.id for o in quiet]))) == 0


def test_second_load_changes_nothing(demo, frozen_now):
    first = _row_counts()
    load_demo(branches=12)
    assert _row_counts() == first
    frozen_now.set(demo + timedelta(days=3))  # a later day: still no second history
    load_demo(branches=12)
    after = _row_counts()
    assert {k: after[k] for k in ("SlotEvent", "BookingEvent", "Notification", "Station", "User")} == \
        {k: first[k] for k in ("SlotEvent", "BookingEvent", "Notification", "Station", "User")}


def test_demo_stations_have_full_street_addresses_and_earlier_ones_are_upgraded(demo):
    stations = db.session.scalars(sa.select(Station).order_by(Station.id)).all()
    assert len(stations) == len(data.STATIONS)
    for station in stations:
        assert station.address.startswith("上海市") and "区" in station.address
        assert re.search(r"\d+(号|弄)", station.address) and " " not in station.address
    qibao, hongqiao = stations[1], stations[2]
    qibao.address = data.EARLIER_ADDRESSES[qibao.name]  # as loaded before this change
    hongqiao.address = "上海市闵行区申长路1号（管理员改过）"
    db.session.commit()
    load_demo(branches=12)
    assert qibao.address == data.STATIONS[1][2]
    assert hongqiao.address == "上海市闵行区申长路1号（管理员改过）"


def test_admin_stats_page_with_the_demo_data_has_rates_and_no_dash(demo, client, login):
    admin = db.session.scalar(sa.select(User).where(User.username == "admin"))
    response = client.post("/login", data={"username": "admin", "password": "partyday"})
    assert response.status_code == 302 and admin is not None
    html = client.get("/admin/stats").get_data(as_text=True)
    assert "出席率" in html and "未到场率" in html
    kpis = html.split('<ul class="kpis">')[1].split("</ul>")[0]
    assert "—" not in kpis and "%" in kpis
    assert html.count('class="table-scroll"') == 5
