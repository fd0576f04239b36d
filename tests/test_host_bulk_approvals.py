"""Bulk approvals (issue 15, item 4): ``services.decide_many`` and ``POST /host/approvals/bulk``.

Each booking is decided by the single-booking rule (``booking.services.approve`` / ``decline``)
in its own transaction under its slot's lock; one that no longer fits is named and left pending
while the others go through. Role: hosts only (403 for secretaries and admins, as the single
approve); ownership: another station's booking is refused as "not found" and never changed.
"""
from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app import create_app
from blueprints.accounts.models import User
from blueprints.booking.models import Booking, BookingEvent, BookingStatus, Notification
from blueprints.catalog.models import Slot
from blueprints.core.db import Busy
from blueprints.core.extensions import db
from blueprints.host import services
from blueprints.host.services import HostError, NotAllowed

from . import factories as f
from .conftest import SessionIsolatingClient, app_config

S = BookingStatus
BULK = "/host/approvals/bulk"
HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch):
    """Every scene has several users with one test password: hash it once."""
    from blueprints.accounts import models

    cache: dict[tuple, str] = {}
    real = models.generate_password_hash

    def cached(password, *args, **kwargs):
        key = (password, args, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = real(password, *args, **kwargs)
        return cache[key]

    monkeypatch.setattr(models, "generate_password_hash", cached)


def branch(name: str):
    """An organisation with its secretary (who receives the notifications)."""
    organisation = f.create_organisation(name=name)
    f.create_secretary(organisation=organisation)
    return organisation


@pytest.fixture
def scene(frozen_now):
    """Host X's station (approval required) with three pending requests on two slots, and host Y's
    station with one pending request."""
    station = f.create_station(requires_approval=True, name="七宝老街党群服务站")
    host = f.create_host(stations=[station])
    package = f.create_package(stations=[station], title="四史微党课")
    first = f.create_slot(package=package, station=station, capacity=30)
    second = f.create_slot(package=package, station=station, capacity=30,
                           starts_at=first.starts_at + timedelta(days=1))
    pending = [
        f.create_booking(slot=first, status=S.PENDING, headcount=10, organisation=branch("七宝镇第一党支部")),
        f.create_booking(slot=first, status=S.PENDING, headcount=10, organisation=branch("七宝镇第二党支部")),
        f.create_booking(slot=second, status=S.PENDING, headcount=10, organisation=branch("虹桥商务区第三党支部")),
    ]
    other_station = f.create_station(requires_approval=True, name="心驿虹桥党群服务站")
    other_host = f.create_host(stations=[other_station])
    foreign = f.create_booking(slot=f.create_slot(station=other_station, package=f.create_package(
        stations=[other_station])), status=S.PENDING, organisation=f.create_organisation(name="别站的党支部"))
    return {"host": host, "other_host": other_host, "first": first, "second": second, "pending": pending,
            "foreign": foreign}


def status_of(booking_id: int) -> S:
    db.session.rollback()
    return db.session.get(Booking, booking_id).status


def statuses(bookings) -> list[S]:
    db.session.rollback()
    return [db.session.get(Booking, b.id).status for b in bookings]


def notifications_of(booking_id: int, kind: str) -> int:
    return db.session.scalar(sa.select(sa.func.count(Notification.id)).where(
        Notification.booking_id == booking_id, Notification.kind == kind))


def snapshot() -> dict:
    """Bookings, their events and notifications: "nothing changed" means exactly that."""
    db.session.rollback()
    return {
        "bookings": sorted(tuple(r) for r in db.session.execute(sa.select(Booking.id, Booking.status, Booking.revision))),
        "events": db.session.scalar(sa.select(sa.func.count(BookingEvent.id))),
        "notifications": db.session.scalar(sa.select(sa.func.count(Notification.id))),
    }


def lower_capacity_behind_the_rules(slot: Slot, capacity: int) -> None:
    """The slot now holds fewer places than its pending requests (as after a correction made
    directly in the database): the single approve refuses such a slot's requests."""
    db.session.execute(sa.update(Slot).where(Slot.id == slot.id).values(capacity=capacity))
    db.session.commit()


# == the domain function ===================================================================

def test_decide_many_approves_several_each_by_the_single_rule_with_its_notification(scene):
    ids = [b.id for b in scene["pending"]]
    result = services.decide_many(scene["host"], ids, "approve")
    assert [item.booking_id for item in result.done] == ids  # oldest request first
    assert result.refused == []
    assert statuses(scene["pending"]) == [S.CONFIRMED] * 3
    for booking_id in ids:
        assert notifications_of(booking_id, "approved") >= 1
        assert db.session.scalar(sa.select(BookingEvent.action).where(BookingEvent.booking_id == booking_id)
                                 .order_by(BookingEvent.id.desc()).limit(1)) == "approved"


def test_one_that_no_longer_fits_is_named_and_left_pending_while_the_others_go_through(scene):
    a, b, c = scene["pending"]
    lower_capacity_behind_the_rules(scene["second"], 5)  # c's slot: 10 people held, 5 places
    result = services.decide_many(scene["host"], [a.id, b.id, c.id], "approve")
    assert [item.booking_id for item in result.done] == [a.id, b.id]
    [refused] = result.refused
    assert refused.booking_id == c.id and refused.organisation == "虹桥商务区第三党支部"
    assert refused.starts_at == scene["second"].starts_at
    assert "超出该场次的名额" in refused.message
    assert statuses([a, b, c]) == [S.CONFIRMED, S.CONFIRMED, S.PENDING]
    assert notifications_of(c.id, "approved") == 0


def test_decline_with_a_reason_declines_each_and_tells_each_branch(scene):
    a, b, _c = scene["pending"]
    result = services.decide_many(scene["host"], [a.id, b.id], "decline", "  当天场地检修  ")
    assert len(result.done) == 2 and not result.refused
    assert statuses([a, b]) == [S.DECLINED, S.DECLINED]
    reasons = db.session.scalars(sa.select(BookingEvent.reason).where(
        BookingEvent.booking_id.in_([a.id, b.id]), BookingEvent.action == "declined")).all()
    assert reasons == ["当天场地检修"] * 2
    assert notifications_of(a.id, "declined") >= 1 and notifications_of(b.id, "declined") >= 1


def test_another_stations_id_is_refused_as_not_found_and_unchanged_ownership(scene):
    own, foreign = scene["pending"][0], scene["foreign"]
    result = services.decide_many(scene["host"], [foreign.id, own.id], "approve")
    assert [item.booking_id for item in result.done] == [own.id]
    [refused] = result.refused
    assert refused.booking_id == foreign.id and not refused.found
    assert refused.organisation is None and refused.message == "找不到该预约。"  # nothing about it revealed
    assert status_of(foreign.id) is S.PENDING


def test_only_other_stations_or_unknown_ids_is_not_allowed_and_changes_nothing_ownership(scene):
    before = snapshot()
    with pytest.raises(NotAllowed):
        services.decide_many(scene["host"], [scene["foreign"].id, 999999], "approve")
    assert snapshot() == before


@pytest.mark.parametrize("role", ["secretary", "admin"])
def test_only_hosts_decide_role(scene, role):
    user = f.create_secretary() if role == "secretary" else f.create_admin()
    before = snapshot()
    with pytest.raises(NotAllowed):
        services.decide_many(user, [b.id for b in scene["pending"]], "approve")
    assert snapshot() == before


def test_already_decided_and_cancelled_slot_bookings_are_reported_by_name(scene):
    a, b, c = scene["pending"]
    services.decide_many(scene["host"], [a.id], "approve")
    services.cancel_slot(scene["host"], scene["second"].id, "场地临时维修")  # c is cancelled with its slot
    result = services.decide_many(scene["host"], [a.id, b.id, c.id], "decline", "名额已满")
    assert [item.booking_id for item in result.done] == [b.id]
    refused = {item.booking_id: item for item in result.refused}
    assert set(refused) == {a.id, c.id}
    assert refused[a.id].organisation == "七宝镇第一党支部" and "已确认" in refused[a.id].message
    assert refused[c.id].organisation == "虹桥商务区第三党支部" and "已取消" in refused[c.id].message
    assert statuses([a, b, c]) == [S.CONFIRMED, S.DECLINED, S.CANCELLED]


@pytest.mark.parametrize(("ids", "action", "reason", "field", "message"), [
    ([], "approve", "", "booking_ids", "请至少选择一个预约"),
    (list(range(1, 202)), "approve", "", "booking_ids", "一次最多选择 200 个预约"),
    ([1], "maybe", "", "action", "请选择通过还是不通过"),
    ([1], "", "", "action", "请选择通过还是不通过"),
    ([1], "decline", "   ", "reason", "请向支部说明原因"),
])
def test_bad_input_is_refused_with_a_message_and_changes_nothing(scene, ids, action, reason, field, message):
    if ids == [1]:
        ids = [scene["pending"][0].id]
    before = snapshot()
    with pytest.raises(HostError) as refused:
        services.decide_many(scene["host"], ids, action, reason)
    assert refused.value.field == field and message in refused.value.message
    assert snapshot() == before


def test_a_slot_busy_past_the_lock_wait_is_reported_and_the_others_go_through(scene, monkeypatch):
    a, b, c = scene["pending"]
    real = services.booking_services.approve

    def approve(user, booking_id):
        if booking_id == b.id:
            raise Busy()
        return real(user, booking_id)

    monkeypatch.setattr(services.booking_services, "approve", approve)
    result = services.decide_many(scene["host"], [a.id, b.id, c.id], "approve")
    assert [item.booking_id for item in result.done] == [a.id, c.id]
    assert [item.booking_id for item in result.refused] == [b.id] and "繁忙" in result.refused[0].message
    assert statuses([a, b, c]) == [S.CONFIRMED, S.PENDING, S.CONFIRMED]


def test_duplicate_ids_are_decided_once(scene):
    a = scene["pending"][0]
    result = services.decide_many(scene["host"], [a.id, a.id, a.id], "approve")
    assert [item.booking_id for item in result.done] == [a.id] and not result.refused
    assert db.session.scalar(sa.select(sa.func.count(BookingEvent.id)).where(
        BookingEvent.booking_id == a.id, BookingEvent.action == "approved")) == 1


# == the route =============================================================================

def flashes(html: str) -> str:
    match = re.search(r'<div class="flashes"[^>]*>(.*?)</div>', html, re.S)
    return re.sub(r"<[^>]+>", " ", match.group(1)) if match else ""


def test_full_page_approves_and_redirects_303_with_a_flash(client, login, scene):
    a, b, c = scene["pending"]
    login(scene["host"])
    response = client.post(BULK, data={"booking_ids": [str(a.id), str(b.id)], "action": "approve"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/host/approvals")
    page = client.get("/host/approvals").get_data(as_text=True)
    assert "已通过 2 个预约。" in flashes(page)
    assert f'id="booking-{a.id}"' not in page and f'id="booking-{c.id}"' in page
    assert statuses([a, b, c]) == [S.CONFIRMED, S.CONFIRMED, S.PENDING]


def test_full_page_flash_names_the_refused_and_keeps_them_pending(client, login, scene):
    a, b, c = scene["pending"]
    lower_capacity_behind_the_rules(scene["second"], 5)
    login(scene["host"])
    response = client.post(BULK, data={"booking_ids": [str(a.id), str(b.id), str(c.id)], "action": "approve"})
    assert response.status_code == 303
    text = flashes(client.get("/host/approvals").get_data(as_text=True))
    assert re.search(r"已通过 2 个预约；1 个未能处理：虹桥商务区第三党支部（\d+月\d+日周. \d\d:\d\d–\d\d:\d\d）："
                     r"通过该预约将超出该场次的名额。", text), text
    assert status_of(c.id) is S.PENDING


def test_the_flash_names_at_most_five_and_counts_the_rest(client, login, scene):
    """The flash rides in the session cookie: 200 refusals by name would overflow it."""
    host, slot = scene["host"], scene["first"]
    extra = [f.create_booking(slot=slot, status=S.PENDING, headcount=1) for _ in range(6)]
    lower_capacity_behind_the_rules(slot, 5)
    login(host)
    client.post(BULK, data={"booking_ids": [str(b.id) for b in extra + scene["pending"][:2]], "action": "approve"})
    text = flashes(client.get("/host/approvals").get_data(as_text=True))
    assert text.count("超出该场次的名额") == 5 and "另有 3 个。" in text and "所选预约均未能处理" in text


def test_page_number_is_kept_through_the_redirect(client, login, scene):
    login(scene["host"])
    response = client.post(f"{BULK}?page=2", data={"booking_ids": [str(scene["pending"][0].id)], "action": "approve"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/host/approvals?page=2")


def test_htmx_gets_the_list_block_with_the_summary(client, login, scene):
    a, b, c = scene["pending"]
    lower_capacity_behind_the_rules(scene["second"], 5)
    login(scene["host"])
    response = client.post(BULK, data={"booking_ids": [str(a.id), str(c.id)], "action": "approve"}, headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html and html.lstrip().startswith('<div id="approvals">')
    assert 'class="bulk-summary' in html and "已通过 1 个预约；1 个未能处理：" in html
    assert re.search(r"<li>虹桥商务区第三党支部（[^）]+）：通过该预约将超出该场次的名额。</li>", html)
    assert f'id="booking-{a.id}"' not in html and f'id="booking-{c.id}"' in html
    assert "checked" not in html  # the refused one is not left ticked for the next decision
    assert statuses([a, b, c]) == [S.CONFIRMED, S.PENDING, S.PENDING]


def test_htmx_decline_with_a_reason(client, login, scene):
    a, b, _c = scene["pending"]
    login(scene["host"])
    response = client.post(BULK, data={"booking_ids": [str(a.id), str(b.id)], "action": "decline",
                                       "reason": "当天场地检修"}, headers=HTMX)
    assert response.status_code == 200 and "已不通过 2 个预约" in response.get_data(as_text=True)
    assert statuses([a, b]) == [S.DECLINED, S.DECLINED]


BAD_INPUT = [
    ({"action": "approve"}, "请至少选择一个预约"),
    ({"booking_ids": ["abc"], "action": "approve"}, "无效的预约编号"),
    ({"booking_ids": ["{first}", "１"], "action": "approve"}, "无效的预约编号"),  # a full-width digit
    ({"booking_ids": ["{first}", "-3"], "action": "approve"}, "无效的预约编号"),
    ({"booking_ids": ["{first}"], "action": "maybe"}, "请选择通过还是不通过"),
    ({"booking_ids": ["{first}"]}, "请选择通过还是不通过"),
    ({"booking_ids": ["{first}"], "action": "decline", "reason": ""}, "请向支部说明原因"),
    ({"booking_ids": ["{first}"], "action": "decline", "reason": "长" * 501}, "500"),
    ({"booking_ids": [str(n) for n in range(1, 202)], "action": "approve"}, "一次最多选择 200 个预约"),
]


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize(("data", "message"), BAD_INPUT, ids=[m for _d, m in BAD_INPUT])
def test_bad_input_answers_422_with_the_message_and_changes_nothing(client, login, scene, data, message, htmx):
    first = str(scene["pending"][0].id)
    data = {key: [first if v == "{first}" else v for v in value] if isinstance(value, list) else value
            for key, value in data.items()}
    login(scene["host"])
    before = snapshot()
    response = client.post(BULK, data=data, headers=HTMX if htmx else {})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and message in html
    assert ("<html" in html) is not htmx
    assert 'role="alert"' in html
    assert snapshot() == before


def test_a_refused_decline_keeps_the_selection_ticked(client, login, scene):
    a, b, c = scene["pending"]
    login(scene["host"])
    html = client.post(BULK, data={"booking_ids": [str(a.id), str(c.id)], "action": "decline"}).get_data(as_text=True)
    ticked = set(re.findall(r'id="pick-(\d+)"[^>]*checked', html))
    assert ticked == {str(a.id), str(c.id)}
    assert 'id="bulk-reason"' in html and 'aria-invalid="true" aria-describedby="bulk-reason-error"' in html


def test_secretary_gets_403_role(client, login, scene):
    login(f.create_secretary())
    before = snapshot()
    response = client.post(BULK, data={"booking_ids": [str(scene["pending"][0].id)], "action": "approve"})
    assert response.status_code == 403 and snapshot() == before


def test_admin_gets_403_like_the_single_approve_role(client, login, scene):
    login(f.create_admin())
    assert client.post(BULK, data={"booking_ids": [str(scene["pending"][0].id)], "action": "approve"}).status_code == 403


def test_anonymous_is_sent_to_login(client, scene):
    response = client.post(BULK, data={"booking_ids": [str(scene["pending"][0].id)], "action": "approve"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_other_host_gets_404_and_nothing_changes_ownership(client, login, scene):
    login(scene["other_host"])
    before = snapshot()
    response = client.post(BULK, data={"booking_ids": [str(b.id) for b in scene["pending"]], "action": "approve"})
    assert response.status_code == 404 and snapshot() == before
    assert "七宝镇第一党支部" not in response.get_data(as_text=True)


def test_other_host_mixing_in_a_foreign_id_sees_it_only_as_not_found_ownership(client, login, scene):
    login(scene["other_host"])
    own, foreign = scene["foreign"], scene["pending"][0]
    client.post(BULK, data={"booking_ids": [str(own.id), str(foreign.id)], "action": "approve"})
    text = flashes(client.get("/host/approvals").get_data(as_text=True))
    assert f"编号 {foreign.id} 的预约：找不到该预约。" in text and "七宝镇第一党支部" not in text
    assert status_of(foreign.id) is S.PENDING and status_of(own.id) is S.CONFIRMED


def test_select_all_without_javascript_ticks_every_request_of_the_page(client, login, scene):
    login(scene["host"])
    plain = client.get("/host/approvals").get_data(as_text=True)
    assert not re.search(r'id="pick-\d+"[^>]*checked', plain)
    assert "全选本页 3 个预约" in plain and 'href="/host/approvals?select=all"' in plain
    html = client.get("/host/approvals?select=all").get_data(as_text=True)
    assert set(re.findall(r'id="pick-(\d+)"[^>]*checked', html)) == {str(b.id) for b in scene["pending"]}
    assert "取消全选" in html
    # Every checkbox belongs to the bulk form and is labelled by its organisation's name.
    for booking in scene["pending"]:
        assert re.search(rf'<input type="checkbox" class="bulk-check" id="pick-{booking.id}" name="booking_ids" '
                         rf'value="{booking.id}" form="bulk-form"', html)
        assert f'<label for="pick-{booking.id}">{booking.organisation.name}</label>' in html


def test_no_bulk_form_without_pending_requests(client, login, frozen_now):
    login(f.create_host())
    html = client.get("/host/approvals").get_data(as_text=True)
    assert "没有待审核的预约" in html and 'id="bulk-form"' not in html


# == CSRF switched on ======================================================================

@pytest.fixture
def csrf_app(tmp_path):
    application = create_app(app_config(f"sqlite:///{tmp_path / 'csrf.sqlite3'}", WTF_CSRF_ENABLED=True))
    application.test_client_class = SessionIsolatingClient
    with application.app_context():
        db.create_all()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def test_with_csrf_on_the_bulk_form_needs_its_token(csrf_app):
    with csrf_app.test_request_context():
        station = f.create_station(requires_approval=True)
        host = f.create_host(stations=[station])
        booking = f.create_booking(slot=f.create_slot(station=station, package=f.create_package(stations=[station])),
                                   status=S.PENDING)
        booking_id, username = booking.id, host.username
        client = csrf_app.test_client()
        login_page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page).group(1)
        assert client.post("/login", data={"username": username, "password": f.PASSWORD,
                                           "csrf_token": token}).status_code == 302
        page = client.get("/host/approvals").get_data(as_text=True)
        form = re.search(r'<form id="bulk-form".*?</form>', page, re.S).group(0)
        form_token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)

        refused = client.post(BULK, data={"booking_ids": [str(booking_id)], "action": "approve"})
        assert refused.status_code == 400 and status_of(booking_id) is S.PENDING
        accepted = client.post(BULK, data={"booking_ids": [str(booking_id)], "action": "approve",
                                           "csrf_token": form_token})
        assert accepted.status_code == 303 and status_of(booking_id) is S.CONFIRMED


# == concurrency ===========================================================================

@pytest.fixture
def race_app(app):
    """The same database behind a pool with a connection for every thread."""
    race = create_app(app_config(app.config["SQLALCHEMY_DATABASE_URI"],
                                 SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 12, "max_overflow": 0, "pool_timeout": 30}))
    yield race
    with race.app_context():
        db.engine.dispose()


def race(race_app, jobs) -> list:
    """Run each job (a callable taking the app's user by id) in its own thread and app context, all
    released at once; return what each returned or raised."""
    db.session.commit()
    barrier = threading.Barrier(len(jobs), timeout=60)
    results, lock = [], threading.Lock()

    def run(job):
        with race_app.app_context():
            prepared = job()
            barrier.wait()
            try:
                result = ("ok", prepared())
            except (HostError, services.BookingError) as error:
                result = ("refused", error.message)
            except Busy:
                result = ("busy", None)
            except Exception as error:  # noqa: BLE001 - anything else fails the test
                result = ("error", repr(error))
            finally:
                db.session.remove()
            with lock:
                results.append(result)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return results


def test_bulk_approvals_racing_capacity_decreases_never_overbook(app, race_app, frozen_now):
    """Two bulk approvals of the same eight requests (two browser tabs) and capacity decreases to
    every size from 40 down, all at once: every request is approved exactly once, the capacity
    never ends below the people held, and the slot never holds more than its places."""
    station = f.create_station(requires_approval=True)
    host = f.create_host(stations=[station])
    slot = f.create_slot(station=station, package=f.create_package(stations=[station]), capacity=60)
    requests = [f.create_booking(slot=slot, status=S.PENDING, headcount=5) for _ in range(8)]  # 40 people
    ids, host_id, slot_id = [b.id for b in requests], host.id, slot.id

    def bulk():
        user = db.session.get(User, host_id)
        return lambda: services.decide_many(user, ids, "approve")

    def shrink(capacity):
        def prepare():
            user = db.session.get(User, host_id)
            return lambda: services.change_capacity(user, slot_id, capacity).capacity
        return prepare

    results = race(race_app, [bulk, bulk] + [shrink(c) for c in (50, 45, 40, 39, 35, 20)])
    assert not [r for r in results if r[0] == "error"], results
    bulk_results = [r[1] for r in results if r[0] == "ok" and isinstance(r[1], services.BulkResult)]
    done = [item.booking_id for result in bulk_results for item in result.done]
    busy = [r for r in results if r[0] == "busy"]
    assert len(done) == len(set(done))  # nobody approved twice
    if not busy:
        assert sorted(done) == sorted(ids) and len(bulk_results) == 2
    for result in bulk_results:
        for item in result.refused:
            assert "不再等待审核" in item.message or "繁忙" in item.message, item
    for kind, value in results:
        if kind == "refused":
            assert "不能低于" in value, value  # capacity below the 40 people held
    db.session.rollback()
    final = db.session.get(Slot, slot_id)
    confirmed = db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Booking.headcount), 0)).where(
        Booking.slot_id == slot_id, Booking.status.in_((S.CONFIRMED, S.PENDING))))
    assert confirmed == 40 <= final.capacity
    assert db.session.scalar(sa.select(sa.func.count(BookingEvent.id)).where(
        BookingEvent.booking_id.in_(ids), BookingEvent.action == "approved")) == len(done)


# == in the browser, at 390×844 ==============================================================

@pytest.fixture
def browser_scene(frozen_now):
    station = f.create_station(requires_approval=True, name="七宝老街党群服务站")
    host = f.create_host(stations=[station])
    slot = f.create_slot(package=f.create_package(stations=[station], title="四史微党课"), station=station, capacity=40)
    bookings = [f.create_booking(slot=slot, status=S.PENDING, headcount=8, organisation=branch(name))
                for name in ("七宝镇第一党支部", "七宝镇第二党支部", "七宝镇第三党支部")]
    return host, bookings


@pytest.mark.browser
def test_browser_without_javascript_select_two_and_approve(live_server, browser, browser_scene):
    from .conftest import browser_login

    host, (a, b, c) = browser_scene
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        browser_login(page, live_server.url, host.username, f.PASSWORD)
        page.goto(live_server.url + "/host/approvals")
        page.get_by_label("七宝镇第一党支部").check()
        page.get_by_label("七宝镇第三党支部").check()
        page.get_by_role("button", name="通过所选预约", exact=True).click()
        page.wait_for_load_state()
        assert page.url == live_server.url + "/host/approvals"
        assert "已通过 2 个预约。" in page.locator(".flashes").inner_text()
        assert page.locator(".approval").count() == 1 and page.locator(f"#booking-{b.id}").count() == 1
        assert statuses([a, b, c]) == [S.CONFIRMED, S.PENDING, S.CONFIRMED]
        # Nothing is cut off or scrolls sideways on the phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


@pytest.mark.browser
def test_browser_with_javascript_select_all_then_approve_swaps_the_list(live_server, page, browser_scene):
    from .conftest import browser_login

    host, bookings = browser_scene
    browser_login(page, live_server.url, host.username, f.PASSWORD)
    page.goto(live_server.url + "/host/approvals")
    page.get_by_role("link", name="全选本页 3 个预约").click()
    page.get_by_role("link", name="取消全选").wait_for()
    assert page.url == live_server.url + "/host/approvals"  # htmx swapped the list, no navigation
    for booking in bookings:
        assert page.get_by_label(booking.organisation.name).is_checked()
    page.get_by_role("button", name="通过所选预约", exact=True).click()
    summary = page.locator(".bulk-summary")
    summary.wait_for()
    assert "已通过 3 个预约。" in summary.inner_text()
    assert page.locator(".approval").count() == 0 and "没有待审核的预约" in page.inner_text("#approvals")
    assert statuses(bookings) == [S.CONFIRMED] * 3


@pytest.mark.browser
def test_browser_with_javascript_decline_without_reason_then_with_one(live_server, page, browser_scene):
    from playwright.sync_api import expect

    from .conftest import browser_login

    host, (a, b, c) = browser_scene
    browser_login(page, live_server.url, host.username, f.PASSWORD)
    page.goto(live_server.url + "/host/approvals")
    page.get_by_label("七宝镇第二党支部").check()
    page.get_by_role("button", name="不通过所选预约").click()
    error = page.locator("#bulk-reason-error")
    error.wait_for()
    assert "请向支部说明原因" in error.inner_text()
    assert page.get_by_label("七宝镇第二党支部").is_checked()  # the selection survives the refusal
    # htmx focuses the [autofocus] field once the swap settles: the field to fix.
    expect(page.locator("#bulk-reason")).to_be_focused()
    page.get_by_label("不通过所选预约的原因").fill("当天场地检修")
    page.get_by_label("不通过所选预约的原因").press("Enter")  # Enter in the reason declines, never approves
    page.locator(".bulk-summary").wait_for()
    assert "已不通过 1 个预约" in page.locator(".bulk-summary").inner_text()
    # The pressed button is gone: the keyboard goes on from the summary.
    expect(page.locator(".bulk-summary")).to_be_focused()
    assert statuses([a, b, c]) == [S.PENDING, S.DECLINED, S.PENDING]
