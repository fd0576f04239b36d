"""/admin/audit: booking and slot events merged newest first; filters who, what, status, when,
station, organisation; pages without a full count; a fixed number of queries per page."""
import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from blueprints.booking.models import BookingEvent, BookingStatus
from blueprints.catalog.models import SlotEvent
from blueprints.catalogue.audit import AuditFilters, audit_page
from blueprints.core.extensions import db

from . import factories as f

HX = {"HX-Request": "true"}
T0 = datetime(2026, 11, 10, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai


def html(response):
    return response.get_data(as_text=True)


def event_ids(page):
    return re.findall(r'id="((?:booking|slot)-event-\d+)"', page)


@pytest.fixture
def scene():
    """Two stations, two organisations; events spread over four days."""
    station_a = f.create_station(name="七宝老街党群服务站")
    station_b = f.create_station(name="虹桥火车站党群服务站")
    host = f.create_host(stations=[station_a], display_name="李站长", username="lihost")
    org_x = f.create_organisation(name="新虹街道机关第一党支部")
    org_y = f.create_organisation(name="七宝镇第二党支部")
    secretary = f.create_secretary(organisation=org_x, display_name="王书记", username="wangsec")
    slot_a = f.create_slot(station=station_a, package=f.create_package(stations=[station_a]))
    slot_b = f.create_slot(station=station_b, package=f.create_package(stations=[station_b]))
    booking_x = f.create_booking(slot=slot_a, organisation=org_x, status=BookingStatus.CANCELLED)
    booking_y = f.create_booking(slot=slot_b, organisation=org_y, status=BookingStatus.CONFIRMED)
    db.session.execute(sa.delete(BookingEvent))  # the factory's own events: replaced by dated ones
    events = {
        "slot_created": SlotEvent(slot_id=slot_a.id, actor_id=host.id, action="created", at=T0),
        "x_booked": BookingEvent(booking_id=booking_x.id, actor_id=secretary.id, to_status=BookingStatus.CONFIRMED,
                                 action="created", at=T0 + timedelta(days=1)),
        "y_pending": BookingEvent(booking_id=booking_y.id, actor_id=None, to_status=BookingStatus.PENDING,
                                  action="created", at=T0 + timedelta(days=1, hours=1)),
        "y_approved": BookingEvent(booking_id=booking_y.id, actor_id=host.id, from_status=BookingStatus.PENDING,
                                   to_status=BookingStatus.CONFIRMED, action="approved", at=T0 + timedelta(days=2)),
        "x_cancelled": BookingEvent(booking_id=booking_x.id, actor_id=secretary.id,
                                    from_status=BookingStatus.CONFIRMED, to_status=BookingStatus.CANCELLED,
                                    action="cancelled", reason="支部另有安排", at=T0 + timedelta(days=3)),
        "slot_closed": SlotEvent(slot_id=slot_a.id, actor_id=host.id, action="closed", at=T0 + timedelta(days=3, hours=2)),
    }
    db.session.add_all(events.values())
    db.session.commit()
    ids = {name: f"{'slot' if isinstance(e, SlotEvent) else 'booking'}-event-{e.id}" for name, e in events.items()}
    return {"ids": ids, "station_a": station_a, "station_b": station_b, "host": host}


@pytest.fixture
def admin(login):
    return login(f.create_admin())


def names(scene, page):
    by_id = {v: k for k, v in scene["ids"].items()}
    return [by_id[i] for i in event_ids(page)]


def test_audit_merges_booking_and_slot_events_newest_first(client, admin, scene):
    page = html(client.get("/admin/audit"))
    assert names(scene, page) == ["slot_closed", "x_cancelled", "y_approved", "y_pending", "x_booked", "slot_created"]
    assert "取消了预约" in page and "支部另有安排" in page and "停止了预约" in page
    assert "李站长（lihost）" in page and "系统" in page  # the waitlist promotion etc. have no actor
    for label in ("操作人（账号或姓名）", "操作", "操作后的预约状态", "站点", "组织（名称包含）"):
        assert label in page


def test_audit_fragment_is_the_results_only(client, admin, scene):
    response = client.get("/admin/audit?what=slot:", headers=HX)
    body = html(response)
    assert "<html" not in body and body.lstrip().startswith('<section id="results"')
    assert names(scene, body) == ["slot_closed", "slot_created"]
    assert "<html" in html(client.get("/admin/audit?what=slot:", headers={**HX, "HX-Boosted": "true"}))


@pytest.mark.parametrize("query,expected", [
    ("who=lihost", ["slot_closed", "y_approved", "slot_created"]),
    ("who=王", ["x_cancelled", "x_booked"]),
    ("what=booking:cancelled", ["x_cancelled"]),
    ("what=slot:created", ["slot_created"]),
    ("what=booking:created", ["y_pending", "x_booked"]),
    ("what=booking:", ["x_cancelled", "y_approved", "y_pending", "x_booked"]),
    ("status=confirmed", ["y_approved", "x_booked"]),
    ("status=pending&who=nobody", []),
    ("organisation=七宝镇", ["y_approved", "y_pending"]),
    ("date_from=2026-11-11&date_to=2026-11-12", ["y_approved", "y_pending", "x_booked"]),
    ("date_from=2026-11-13", ["slot_closed", "x_cancelled"]),
    ("date_to=2026-11-10", ["slot_created"]),
    ("what=booking:approved&organisation=七宝镇&who=李站长&date_from=2026-11-12&date_to=2026-11-12",
     ["y_approved"]),
])
def test_audit_filters(client, admin, scene, query, expected):
    assert names(scene, html(client.get(f"/admin/audit?{query}", headers=HX))) == expected


def test_audit_station_filter_keeps_both_kinds_of_event(client, admin, scene):
    station_a = scene["station_a"].id
    page = html(client.get(f"/admin/audit?station={station_a}"))
    assert names(scene, page) == ["slot_closed", "x_cancelled", "x_booked", "slot_created"]
    assert f'<option selected value="{station_a}">' in page
    station_b = scene["station_b"].id
    assert names(scene, html(client.get(f"/admin/audit?station={station_b}"))) == ["y_approved", "y_pending"]


@pytest.mark.parametrize("query,message", [
    ("date_from=2026-11-12&date_to=2026-11-11", "结束日期早于开始日期"),
    ("date_from=yesterday", "不是有效的日期"),
    ("station=abc", "选择无效"),
    ("what=booking:delete_everything", "不是有效的选择"),
])
def test_audit_bad_filters_get_a_chinese_message_not_a_500(client, admin, scene, query, message):
    response = client.get(f"/admin/audit?{query}")
    body = html(response)
    assert response.status_code == 200
    assert message in body and "请先更正上面的筛选条件" in body and event_ids(body) == []


def _many_events(n, station=None):
    slot = f.create_slot(station=station) if station else f.create_slot()
    host = f.create_host(stations=[slot.station])
    for i in range(n):
        booking = f.create_booking(slot=slot, status=BookingStatus.CANCELLED)
        db.session.add(SlotEvent(slot_id=slot.id, actor_id=host.id, action="edited", at=T0 + timedelta(minutes=i)))
        db.session.add(BookingEvent(booking_id=booking.id, actor_id=host.id, to_status=BookingStatus.CANCELLED,
                                    action="cancelled", at=T0 + timedelta(minutes=i, seconds=30)))
    db.session.commit()


def test_audit_pages_without_counting_everything(client, admin):
    _many_events(60)  # 60 slot events + 60 "cancelled" + 60 factory "created" booking events = 180
    first = html(client.get("/admin/audit"))
    assert len(event_ids(first)) == 50 and 'rel="next"' in first and 'rel="prev"' not in first
    last = html(client.get("/admin/audit?page=4", headers=HX))
    assert len(event_ids(last)) == 30 and 'rel="next"' not in last and 'rel="prev"' in last
    assert event_ids(html(client.get("/admin/audit?page=9"))) == []
    # Filters travel with the page links.
    filtered = html(client.get("/admin/audit?what=slot:edited"))
    assert "what=slot%3Aedited&amp;page=2" in filtered or "what=slot:edited&amp;page=2" in filtered
    assert client.get("/admin/audit?page=-3").status_code == 200
    deep = client.get("/admin/audit?page=90000")  # beyond the deepest page served: the last one, empty
    assert deep.status_code == 200 and event_ids(html(deep)) == []


def test_audit_query_count_does_not_grow_with_the_events(client, admin, count_queries):
    def queries(query=""):
        with count_queries() as counter:
            assert client.get(f"/admin/audit{query}").status_code == 200
        return counter.count

    station = f.create_station()
    _many_events(2, station)
    few, few_filtered = queries(), queries(f"?station={station.id}&who=host&date_from=2026-11-01")
    _many_events(40, station)
    assert queries() == few
    assert queries(f"?station={station.id}&who=host&date_from=2026-11-01") == few_filtered
    assert few <= 6  # user, stations for the filter, the page's keys, its booking and slot events


def test_audit_page_service_orders_equal_times_stably():
    slot = f.create_slot()
    booking = f.create_booking(slot=slot)
    db.session.execute(sa.delete(BookingEvent))
    db.session.add_all([SlotEvent(slot_id=slot.id, action="edited", at=T0),
                        BookingEvent(booking_id=booking.id, to_status=BookingStatus.CONFIRMED, action="created", at=T0)])
    db.session.commit()
    page = audit_page(AuditFilters(), 1, 50)
    assert [e.kind for e in page.entries] == ["booking", "slot"]


def test_audit_filter_indexes_exist():
    inspector = sa.inspect(db.engine)
    booking_indexes = {i["name"] for i in inspector.get_indexes("booking_events")}
    slot_indexes = {i["name"] for i in inspector.get_indexes("slot_events")}
    assert {"ix_booking_events_action_at", "ix_booking_events_to_status_at", "ix_booking_events_at",
            "ix_booking_events_actor_id", "ix_booking_events_booking_id"} <= booking_indexes
    assert {"ix_slot_events_action_at", "ix_slot_events_at", "ix_slot_events_actor_id",
            "ix_slot_events_slot_id"} <= slot_indexes
