"""Durable jobs (blueprints/jobs): the outbox written in the change's transaction, claims and
retries, the minute's periodic work (reminders, settlement), the consumer command, and a consumer
killed with SIGKILL in the middle of a batch."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from blueprints.booking import reminders, services
from blueprints.booking.models import Booking, BookingStatus, Notification
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.jobs import consumer, queue
from blueprints.jobs.models import Job

from . import factories as f
from .conftest import FROZEN_NOW

ROOT = Path(__file__).resolve().parents[1]
EFFECTS = []


@queue.handler("test_effect")
def _effect(payload):
    """A job whose effect is a row, committed with the job's done_at."""
    if payload.get("fail"):
        db.session.add(Notification(user_id=payload["user_id"], kind="confirmed", params={}))
        raise RuntimeError("boom")
    db.session.add(Notification(user_id=payload["user_id"], kind="confirmed", params={"n": payload["n"]}))
    EFFECTS.append(payload["n"])


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch, request):
    from blueprints.accounts import models

    if "login" in request.fixturenames:  # logging in needs the real hash
        return

    monkeypatch.setattr(models, "generate_password_hash",
                        lambda password, method=None: "pbkdf2:sha256:1$salt$" + str(len(password)))


def jobs() -> list[Job]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Job).order_by(Job.id)))


def notifications_of(user) -> list[Notification]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Notification).where(Notification.user_id == user.id)))


# -- the outbox -----------------------------------------------------------------------------------

def test_a_job_exists_only_if_its_transaction_commits():
    user = f.create_secretary()
    queue.enqueue("test_effect", "t:1", {"user_id": user.id, "n": 1})
    db.session.rollback()
    assert jobs() == []
    queue.enqueue("test_effect", "t:1", {"user_id": user.id, "n": 1})
    db.session.commit()
    assert [job.key for job in jobs()] == ["t:1"]


def test_one_job_per_event_key():
    user = f.create_secretary()
    first = queue.enqueue("test_effect", "t:same", {"user_id": user.id, "n": 1})
    second = queue.enqueue("test_effect", "t:same", {"user_id": user.id, "n": 2})
    db.session.commit()
    assert first is not None and second is None and len(jobs()) == 1


def test_an_unknown_kind_is_refused_at_enqueue():
    with pytest.raises(ValueError):
        queue.enqueue("no_such_kind", "x:1", {})


def test_a_job_runs_once_and_its_effect_commits_with_its_done_mark(frozen_now):
    user = f.create_secretary()
    EFFECTS.clear()
    job_id = queue.enqueue("test_effect", "t:1", {"user_id": user.id, "n": 7})
    db.session.commit()
    assert queue.run(job_id) is True
    assert queue.run(job_id) is False  # done: never again
    assert EFFECTS == [7] and len(notifications_of(user)) == 1
    [job] = jobs()
    assert job.done_at == FROZEN_NOW and job.attempts == 1 and job.claimed_until is None


def test_a_failing_job_leaves_no_effect_and_is_retried_after_a_doubling_delay(frozen_now):
    user = f.create_secretary()
    job_id = queue.enqueue("test_effect", "t:f", {"user_id": user.id, "fail": True})
    db.session.commit()
    assert queue.run(job_id) is False
    assert notifications_of(user) == []  # the handler's row went with its rollback
    [job] = jobs()
    assert job.attempts == 1 and job.run_after == FROZEN_NOW + timedelta(seconds=30) and "boom" in job.last_error
    assert [queue.retry_delay(n) for n in (1, 2, 3, 4)] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]


def test_a_claimed_job_is_not_run_by_a_second_consumer_until_its_lease_ends(frozen_now, app):
    """A consumer killed while it held a job: the job waits for the lease, then runs elsewhere."""
    user = f.create_secretary()
    job_id = queue.enqueue("test_effect", "t:1", {"user_id": user.id, "n": 1})
    db.session.commit()
    assert queue._claim(job_id) is True  # the first consumer, which then dies
    assert queue.run(job_id) is False and queue.due() == []
    frozen_now.set(FROZEN_NOW + timedelta(seconds=app.config.get("JOBS_LEASE_SECONDS", 300) + 1))
    assert queue.due() == [job_id] and queue.run(job_id) is True
    assert jobs()[0].attempts == 2 and len(notifications_of(user)) == 1


def test_a_job_scheduled_for_later_waits(frozen_now):
    user = f.create_secretary()
    job_id = queue.enqueue("test_effect", "t:later", {"user_id": user.id, "n": 1},
                           run_after=FROZEN_NOW + timedelta(hours=1))
    db.session.commit()
    assert queue.run_due() == 0 and queue.backlog()["scheduled"] == 1
    frozen_now.set(FROZEN_NOW + timedelta(hours=1))
    assert queue.run_due() == 1 and queue.run(job_id) is False


# -- reminders -------------------------------------------------------------------------------------

@pytest.fixture
def reminder_scene(frozen_now):
    station = f.create_station(name="七宝老街党群服务站", address="闵行区七宝镇青年路1号")
    package = f.create_package(stations=[station], title="进博·理论学习包", min_group_size=2, max_group_size=20)
    soon = f.create_slot(package=package, station=station, capacity=40, starts_at=FROZEN_NOW + timedelta(hours=20))
    later = f.create_slot(package=package, station=station, capacity=40, starts_at=FROZEN_NOW + timedelta(days=3))
    organisation = f.create_organisation(name="新虹街道机关第一党支部")
    secretary = f.create_secretary(organisation=organisation)
    host = f.create_host(stations=[station])
    booking = f.create_booking(slot=soon, organisation=organisation, headcount=12, status=BookingStatus.CONFIRMED,
                               contact_name="王书记", contact_phone="13912345678")
    return {"soon": soon, "later": later, "secretary": secretary, "host": host, "booking": booking,
            "organisation": organisation, "package": package, "station": station}


def test_a_confirmed_booking_within_the_reminder_window_gets_one_reminder_and_its_host_one(reminder_scene):
    scene = reminder_scene
    assert reminders.queue_due_reminders() == 2  # the booking and its slot
    assert reminders.queue_due_reminders() == 0  # never twice
    assert queue.run_due() == 2
    [note] = notifications_of(scene["secretary"])
    from flask_babel import force_locale

    from blueprints.booking.notifications import message_for

    with force_locale("zh_CN"):
        text = message_for(note.kind, note.params)
    assert text.startswith("提醒")
    assert "七宝老街党群服务站" in text and "闵行区七宝镇青年路1号" in text and "12人" in text
    assert f"/bookings/{scene['booking'].id}/confirmation" in text and "王书记 13912345678" in text
    [host_note] = notifications_of(scene["host"])
    with force_locale("zh_CN"):
        host_text = message_for(host_note.kind, host_note.params)
    assert host_text.startswith("提醒") and "1 批预约" in host_text and "共 12 人" in host_text
    assert host_note.params["slot_id"] == scene["soon"].id  # the inbox links it to the roster


def test_the_hosts_inbox_links_a_slot_reminder_to_its_roster(reminder_scene, client, login):
    reminders.queue_due_reminders()
    queue.run_due()
    login(reminder_scene["host"])
    html = client.get("/notifications").get_data(as_text=True)
    assert "提醒" in html and f'href="/host/slots/{reminder_scene["soon"].id}/roster">预约名单</a>' in html
    assert reminders.queue_due_reminders() == 0 and queue.run_due() == 0


def test_the_reminder_is_mailed_too(reminder_scene, app, monkeypatch):
    from aiosmtpd.controller import Controller

    from .test_booking_notifications import Sink, free_port, parsed, use_smtp

    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        use_smtp(app, monkeypatch, controller.port)
        user = reminder_scene["secretary"]
        user.email = "wang@example.org"
        db.session.commit()
        reminders.queue_due_reminders()
        queue.run_due()  # the reminder, which queues its mail
        queue.run_due()  # the mail
        [envelope] = sink.wait_for(1)
        body = parsed(envelope).get_content()
        assert envelope.rcpt_tos == ["wang@example.org"] and body.startswith("提醒")
        assert "/confirmation" in body
    finally:
        controller.stop()


def test_no_reminder_before_the_window_and_one_once_the_window_reaches_the_slot(reminder_scene, frozen_now):
    scene = reminder_scene
    other = f.create_booking(slot=scene["later"], headcount=5, status=BookingStatus.CONFIRMED)
    reminders.queue_due_reminders()
    assert {job.payload.get("booking_id") for job in jobs()} == {scene["booking"].id, None}
    frozen_now.set(scene["later"].starts_at - timedelta(hours=23, minutes=59))
    reminders.queue_due_reminders()
    assert other.id in {job.payload.get("booking_id") for job in jobs()}


def test_no_reminder_for_a_booking_cancelled_after_it_was_queued(reminder_scene):
    scene = reminder_scene
    reminders.queue_due_reminders()
    services.cancel(scene["host"], scene["booking"].id, "场地临时检修")
    queue.run_due()
    assert [n.kind for n in notifications_of(scene["secretary"])] == ["cancelled_by_station"]
    assert all(job.done_at is not None for job in jobs())


def test_no_reminder_of_the_old_slot_for_a_booking_moved_after_it_was_queued(reminder_scene):
    scene = reminder_scene
    reminders.queue_due_reminders()
    booking = db.session.get(Booking, scene["booking"].id)
    booking.slot_id = scene["later"].id  # as a move leaves it: same booking, another slot
    db.session.commit()
    queue.run_due()
    assert [n.kind for n in notifications_of(scene["secretary"])] == []
    assert reminders.queue_due_reminders() == 0  # the new slot is three days ahead


def test_a_booking_moved_into_the_window_is_reminded_of_its_new_slot(reminder_scene, frozen_now):
    scene = reminder_scene
    reminders.queue_due_reminders()
    queue.run_due()
    booking = db.session.get(Booking, scene["booking"].id)
    booking.slot_id = scene["later"].id
    db.session.commit()
    frozen_now.set(scene["later"].starts_at - timedelta(hours=2))
    assert reminders.queue_due_reminders() == 2  # this booking on its new slot, and that slot's hosts
    queue.run_due()
    assert [n.kind for n in notifications_of(scene["secretary"])] == ["reminder", "reminder"]


def test_pending_and_cancelled_bookings_get_no_reminder(reminder_scene):
    scene = reminder_scene
    f.create_booking(slot=scene["soon"], headcount=3, status=BookingStatus.PENDING)
    f.create_booking(slot=scene["soon"], headcount=3, status=BookingStatus.CANCELLED)
    reminders.queue_due_reminders()
    booked = {job.payload["booking_id"] for job in jobs() if job.kind == reminders.BOOKING_KIND}
    assert booked == {scene["booking"].id}


def test_the_reminder_sweep_issues_a_bounded_number_of_statements(reminder_scene, count_queries):
    for _ in range(30):
        f.create_booking(slot=reminder_scene["soon"], headcount=1, status=BookingStatus.CONFIRMED)
    reminders.queue_due_reminders()
    with count_queries() as counted:
        reminders.queue_due_reminders()  # nothing new: two reads, whatever the number of bookings
    assert counted.count <= 3, counted.statements


# -- settlement by the minute's work, never by a page -----------------------------------------------

def test_the_minute_sweep_settles_no_shows_of_ended_slots(frozen_now):
    slot = f.create_slot(starts_at=FROZEN_NOW - timedelta(hours=3))
    booking = f.create_booking(slot=slot, status=BookingStatus.CONFIRMED)
    consumer.sweep_once()
    assert db.session.get(Booking, booking.id, populate_existing=True).status is BookingStatus.NO_SHOW


def test_flask_jobs_run_once_does_the_minutes_work_and_the_due_jobs(app, frozen_now):
    slot = f.create_slot(starts_at=FROZEN_NOW - timedelta(hours=3))
    booking = f.create_booking(slot=slot, status=BookingStatus.CONFIRMED)
    user = f.create_secretary()
    queue.enqueue("test_effect", "t:cli", {"user_id": user.id, "n": 1})
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["jobs", "run", "--once"])
    assert result.exit_code == 0, result.output
    assert "1 jobs done" in result.output
    assert db.session.get(Booking, booking.id, populate_existing=True).status is BookingStatus.NO_SHOW
    status = app.test_cli_runner().invoke(args=["jobs", "status"])
    assert "due: 0" in status.output


# -- a consumer killed with SIGKILL in the middle of a batch ------------------------------------------

def _consumer(app, tmp_path, log_name, **extra_env):
    env = {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "SECRET_KEY": "test-secret",
           "JOBS_QUEUE_FILE": str(tmp_path / "queue.sqlite3"), "JOBS_LEASE_SECONDS": "2", "LOG_FORMAT": "text",
           "FLASK_APP": "app", "RENDER_CACHE": "0"}
    env.pop("REDIS_URL", None)
    env.pop("SMTP_HOST", None)
    env.update(extra_env)
    with open(tmp_path / log_name, "wb") as log:  # a file, not a pipe: a full pipe would stall the consumer
        return subprocess.Popen([sys.executable, "-m", "flask", "jobs", "run", "--workers", "2"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)


def _done_count() -> int:
    db.session.rollback()
    return db.session.scalar(sa.select(sa.func.count()).select_from(Job).where(Job.done_at.is_not(None)))


def _reminder_batch(groups: int = 120):
    """A slot five hours ahead with ``groups`` confirmed bookings, each of its own organisation,
    and their reminder jobs queued: (secretaries, host, number of jobs)."""
    station = f.create_station()
    host = f.create_host(stations=[station])
    package = f.create_package(stations=[station], min_group_size=1, max_group_size=20)
    slot = f.create_slot(package=package, station=station, capacity=400, starts_at=clock.now() + timedelta(hours=5))
    secretaries = []
    for _ in range(groups):
        organisation = f.create_organisation()
        secretaries.append(f.create_secretary(organisation=organisation))
        f.create_booking(slot=slot, organisation=organisation, headcount=1, status=BookingStatus.CONFIRMED)
    db.session.commit()
    reminders.queue_due_reminders()
    return secretaries, host, len(jobs())


def _wait_until_all_done(total: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _done_count() < total and time.monotonic() < deadline:
        time.sleep(0.05)


def _assert_each_reminded_once(secretaries, host) -> None:
    db.session.expire_all()
    per_user = dict(db.session.execute(
        sa.select(Notification.user_id, sa.func.count()).where(Notification.kind.in_(("reminder", "slot_reminder")))
        .group_by(Notification.user_id)).all())
    assert all(per_user.get(s.id) == 1 for s in secretaries), per_user
    assert per_user.get(host.id) == 1


def test_a_consumer_killed_mid_batch_leaves_every_job_done_exactly_once_after_a_restart(app, tmp_path):
    """Reminders whose effect is an inbox entry: after SIGKILL and a restart, every booking has
    exactly one reminder and every job is done (those the dead consumer held, once its lease ended)."""
    secretaries, host, total = _reminder_batch()
    assert total == 121

    first = _consumer(app, tmp_path, "first.log")
    deadline = time.monotonic() + 60
    while _done_count() < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    done_at_kill = _done_count()
    assert 10 <= done_at_kill < total, "the kill must land in the middle of the batch"

    time.sleep(2.5)  # the dead consumer's leases end
    second = _consumer(app, tmp_path, "second.log")
    try:
        _wait_until_all_done(total)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    assert _done_count() == total, (tmp_path / "second.log").read_text()[-2000:]
    _assert_each_reminded_once(secretaries, host)


def test_two_consumers_at_once_never_run_a_job_twice(app, tmp_path):
    secretaries, host, total = _reminder_batch()
    consumers = [_consumer(app, tmp_path, f"c{n}.log") for n in (1, 2)]
    try:
        _wait_until_all_done(total)
    finally:
        for running in consumers:
            running.send_signal(signal.SIGTERM)
        for running in consumers:
            running.wait(20)
    assert _done_count() == total, (tmp_path / "c1.log").read_text()[-2000:]
    _assert_each_reminded_once(secretaries, host)
    assert {job.attempts for job in jobs()} == {1}


# -- the hand-over: a running consumer gets new jobs at once, through Redis or the queue file ----------

@pytest.mark.parametrize("queue_kind", ["file", "redis"])
def test_a_running_consumer_does_a_new_job_within_seconds_of_the_commit(app, tmp_path, queue_kind):
    from app import create_app

    from .conftest import app_config

    extra = {"JOBS_QUEUE_FILE": str(tmp_path / "queue.sqlite3"), "JOBS_HAND_OVER": True}
    env_extra = {}
    if queue_kind == "redis":
        if not os.environ.get("TEST_REDIS_URL"):
            pytest.skip("TEST_REDIS_URL not set: the Redis queue is tested in CI")
        extra["REDIS_URL"] = env_extra["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
    web = create_app(app_config(app.config["SQLALCHEMY_DATABASE_URI"], CACHE_VERSIONS_FILE=tmp_path / "v.bin",
                                **extra))
    if queue_kind == "redis":
        consumer.huey_for(web)["huey"].flush()  # nothing of an earlier run
    running = _consumer(app, tmp_path, "consumer.log", **env_extra)
    try:
        deadline = time.monotonic() + 30
        while b"jobs consumer" not in (tmp_path / "consumer.log").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # past its start-up sweep: only the hand-over can bring the job now
        organisation = f.create_organisation()
        user = f.create_secretary(organisation=organisation)
        slot = f.create_slot(starts_at=clock.now() + timedelta(days=5))  # outside the window: no sweep queues it
        booking = f.create_booking(slot=slot, organisation=organisation, status=BookingStatus.CONFIRMED)
        db.session.commit()
        with web.app_context():
            queue.enqueue(reminders.BOOKING_KIND, "probe:1", {"booking_id": booking.id, "slot_id": slot.id})
            db.session.commit()  # hands the job over
            db.session.remove()
        started = time.monotonic()
        while _done_count() < 1 and time.monotonic() - started < 15:
            time.sleep(0.05)
        waited = time.monotonic() - started
    finally:
        running.send_signal(signal.SIGTERM)
        running.wait(20)
        with web.app_context():
            db.engine.dispose()
    assert _done_count() == 1, (tmp_path / "consumer.log").read_text()[-2000:]
    assert waited < 10  # not the next minute's sweep
    assert [n.kind for n in notifications_of(user)] == ["reminder"]
