"""Notifications of booking changes: in-app messages for the right people, and e-mail through a
local SMTP sink (aiosmtpd) when SMTP_HOST/SMTP_PORT are set — a durable job per mail, written in
the booking's transaction and sent by the jobs consumer (here: ``run_jobs()``), so a dead or
hanging mail server never slows a booking down and a mail it missed is sent when it is back."""
from __future__ import annotations

import email
import email.policy
import logging
import socket
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask_babel import force_locale

from blueprints.booking import services
from blueprints.booking.models import Booking, BookingStatus, Notification
from blueprints.booking.notifications import message_for
from blueprints.booking.queries import unread_count
from blueprints.core.extensions import db
from blueprints.host import services as host_services
from blueprints.jobs import queue as jobs
from blueprints.jobs.models import Job

from . import factories as f
from .conftest import FROZEN_NOW

S = BookingStatus
SUBJECT = "主题党日预约通知"


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch):
    """These tests never log in: skip the deliberately slow scrypt hashing of the factories."""
    from blueprints.accounts import models

    monkeypatch.setattr(models, "generate_password_hash",
                        lambda password, method=None: "pbkdf2:sha256:1$salt$" + str(len(password)))


@pytest.fixture
def scene(frozen_now):
    station = f.create_station(name="七宝老街党群服务站", phone="021-64001234")
    package = f.create_package(stations=[station], title="进博·理论学习包", min_group_size=2, max_group_size=20)
    slot = f.create_slot(package=package, station=station, capacity=20, starts_at=FROZEN_NOW + timedelta(days=7))
    organisation = f.create_organisation(name="新虹街道机关第一党支部")
    secretary = f.create_secretary(organisation=organisation, email="wang@example.org")
    colleague = f.create_secretary(organisation=organisation)  # no e-mail address
    f.create_secretary(organisation=organisation, active=False, email="old@example.org")
    host = f.create_host(stations=[station], email="host@example.org")
    f.create_host(stations=[station], active=False, email="gone@example.org")
    return {"station": station, "package": package, "slot": slot, "secretary": secretary,
            "colleague": colleague, "host": host, "other": f.create_secretary()}


def request(headcount=5):
    return services.BookingRequest(headcount=headcount, contact_name="王书记", contact_phone="13912345678")


def new_notifications(after_id: int) -> list[Notification]:
    db.session.expire_all()
    return list(db.session.scalars(
        sa.select(Notification).where(Notification.id > after_id).order_by(Notification.id)))


def last_id() -> int:
    return db.session.scalar(sa.select(sa.func.max(Notification.id))) or 0


def _approval(scene):
    scene["station"].requires_approval = True
    db.session.commit()


def _fill(scene, status=S.CONFIRMED):
    return f.create_booking(slot=scene["slot"], headcount=20, status=status)


# Each scenario prepares the scene and returns (what to do, the booking it is about).
def confirmed(scene):
    return lambda: services.book(scene["secretary"], scene["slot"].id, request())


def pending(scene):
    _approval(scene)
    return lambda: services.book(scene["secretary"], scene["slot"].id, request())


def waitlisted(scene):
    _fill(scene)
    return lambda: services.book(scene["secretary"], scene["slot"].id, request(), join_waitlist=True)


def promoted(scene):
    blocker = _fill(scene)
    services.book(scene["secretary"], scene["slot"].id, request(), join_waitlist=True)
    return lambda: services.cancel(scene["host"], blocker.id, "单位临时有任务")


def approved(scene):
    _approval(scene)
    booking = services.book(scene["secretary"], scene["slot"].id, request())
    return lambda: services.approve(scene["host"], booking.id)


def declined(scene):
    _approval(scene)
    booking = services.book(scene["secretary"], scene["slot"].id, request())
    return lambda: services.decline(scene["host"], booking.id, "当天场地另有安排")


def cancelled_by_station(scene):
    booking = services.book(scene["secretary"], scene["slot"].id, request())
    return lambda: services.cancel(scene["host"], booking.id, "暴雨红色预警")


def cancelled_by_branch(scene):
    booking = services.book(scene["secretary"], scene["slot"].id, request())
    return lambda: services.cancel(scene["secretary"], booking.id, "")


def slot_changed(scene):
    services.book(scene["secretary"], scene["slot"].id, request())
    slot = scene["slot"]
    later = slot.starts_at + timedelta(hours=5)  # 10:00 → 15:00 in Shanghai
    return lambda: host_services.edit_slot(scene["host"], slot.id, starts_at=later,
                                           ends_at=later + timedelta(hours=2), capacity=slot.capacity,
                                           max_groups=slot.max_groups, note=slot.note)


def slot_cancelled(scene):
    services.book(scene["secretary"], scene["slot"].id, request())
    return lambda: host_services.cancel_slot(scene["host"], scene["slot"].id, "场地检修")


BRANCH, HOSTS = ("secretary", "colleague"), ("host",)
SCENARIOS = [
    # scenario, [(kind, who is told)], a piece of the Chinese text
    (confirmed, [("confirmed", BRANCH)], "已确认"),
    (pending, [("pending", BRANCH), ("new_pending", HOSTS)], "审核"),
    (waitlisted, [("waitlisted", BRANCH)], "候补"),
    (promoted, [("promoted", BRANCH), ("cancelled_by_station", ())], "有名额空出"),
    (approved, [("approved", BRANCH)], "站点已通过"),
    (declined, [("declined", BRANCH)], "原因：当天场地另有安排"),
    (cancelled_by_station, [("cancelled_by_station", BRANCH)], "原因：暴雨红色预警"),
    (cancelled_by_branch, [("cancelled_by_branch", HOSTS)], "新虹街道机关第一党支部取消了"),
    (slot_changed, [("slot_changed", BRANCH)], "15:00"),
    (slot_cancelled, [("slot_cancelled", BRANCH)], "原因：场地检修"),
]


@pytest.mark.parametrize("scenario,expected,text", SCENARIOS, ids=[s[0].__name__ for s in SCENARIOS])
def test_in_app_notification_goes_to_the_right_active_people(scene, scenario, expected, text):
    action = scenario(scene)
    before = last_id()
    action()
    got = new_notifications(before)
    wanted = sorted((kind, scene[who].id) for kind, people in expected for who in people)
    assert sorted((n.kind, n.user_id) for n in got) == wanted
    kind = expected[0][0]  # the text checked is the first kind's
    note = next(n for n in got if n.kind == kind)
    assert note.read_at is None and note.booking_id is not None
    message = message_for(note.kind, note.params)  # the reader's language: Chinese first
    assert text in message and "%(" not in message
    if kind not in ("new_pending", "cancelled_by_branch"):
        assert "进博·理论学习包" in message
    assert unread_count(note.user_id) >= 1


def test_promotion_message_names_the_new_status_in_the_readers_language(scene):
    action = promoted(scene)
    before = last_id()
    action()
    [note] = [n for n in new_notifications(before) if n.kind == "promoted" and n.user_id == scene["secretary"].id]
    assert "“已确认”" in message_for(note.kind, note.params)
    with force_locale("en"):
        english = message_for(note.kind, note.params)
    assert english.startswith("Places freed up") and "进博·理论学习包" in english


def test_refusals_notify_nobody(scene):
    _fill(scene)
    before = last_id()
    with pytest.raises(services.BookingError):
        services.book(scene["secretary"], scene["slot"].id, request())
    assert new_notifications(before) == []


# -- e-mail -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sink:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self):
        self.envelopes = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.envelopes.append(envelope)
        return "250 Message accepted"

    def wait_for_text(self, fragment: str, timeout: float = 10.0) -> list[tuple[str, list]]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                texts = [(parsed(e).get_content(), e.rcpt_tos) for e in self.envelopes]
            if time.monotonic() > deadline or any(fragment in text for text, _ in texts):
                return texts
            time.sleep(0.02)

    def wait_for(self, count: int, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.envelopes) >= count:
                    return list(self.envelopes)
            time.sleep(0.02)
        return list(self.envelopes)


def use_smtp(app, monkeypatch, port: int) -> None:
    monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
    monkeypatch.setitem(app.config, "SMTP_PORT", port)
    monkeypatch.setitem(app.config, "MAIL_FROM", "partyday@example.org")


@pytest.fixture
def smtp_sink(app, monkeypatch):
    from aiosmtpd.controller import Controller

    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    use_smtp(app, monkeypatch, controller.port)
    yield sink
    controller.stop()


def parsed(envelope):
    return email.message_from_bytes(envelope.content, policy=email.policy.default)


def run_jobs() -> int:
    """What the consumer does with the jobs due now."""
    done = jobs.run_due()
    db.session.expire_all()
    return done


def all_jobs() -> list[Job]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Job).order_by(Job.id)))


def test_confirmation_mail_arrives_with_chinese_subject_and_body_correctly_encoded(scene, smtp_sink):
    services.book(scene["secretary"], scene["slot"].id, request())
    assert run_jobs() == 1
    [envelope] = smtp_sink.wait_for(1)
    assert envelope.rcpt_tos == ["wang@example.org"] and envelope.mail_from == "partyday@example.org"
    raw_headers = envelope.content.split(b"\r\n\r\n", 1)[0]
    raw_headers.decode("ascii")  # headers travel as ASCII: the subject is RFC 2047 encoded
    assert b"=?utf-8?" in raw_headers.lower()
    message = parsed(envelope)
    assert message["Subject"] == SUBJECT
    assert message["To"] == "wang@example.org" and message["From"] == "partyday@example.org"
    assert message["Message-ID"] == "<mail.notification.1@example.org>"  # named by its event
    assert message.get_content_type() == "text/plain" and message.get_content_charset() == "utf-8"
    body = message.get_content()
    assert "七宝老街党群服务站" in body and "进博·理论学习包" in body and "已确认" in body
    # Only the secretary with an address got mail; the colleague without one and the inactive one did not.
    time.sleep(0.2)
    assert len(smtp_sink.envelopes) == 1


def test_the_booking_commits_its_mail_job_and_the_mail_waits_for_the_consumer(scene, smtp_sink):
    booking = services.book(scene["secretary"], scene["slot"].id, request())
    [job] = all_jobs()
    assert job.kind == "mail" and job.key == "mail:notification:1" and job.done_at is None
    assert job.payload["to"] == "wang@example.org"
    time.sleep(0.2)
    assert smtp_sink.envelopes == []  # nothing is sent from the request
    run_jobs()
    smtp_sink.wait_for(1)
    assert all_jobs()[0].done_at is not None and all_jobs()[0].attempts == 1
    assert run_jobs() == 0  # done once: running the queue again sends nothing
    time.sleep(0.2)
    assert len(smtp_sink.envelopes) == 1


def test_pending_booking_mails_the_branch_and_the_station_host(scene, smtp_sink):
    _approval(scene)
    services.book(scene["secretary"], scene["slot"].id, request(7))
    run_jobs()
    envelopes = smtp_sink.wait_for(2)
    bodies = {tuple(e.rcpt_tos): parsed(e).get_content() for e in envelopes}
    assert set(bodies) == {("wang@example.org",), ("host@example.org",)}
    assert "等待站点审核" in bodies[("wang@example.org",)]
    assert "新虹街道机关第一党支部申请预约" in bodies[("host@example.org",)] and "7人" in bodies[("host@example.org",)]


@pytest.mark.parametrize("scenario,fragment", [
    (promoted, "有名额空出"), (approved, "站点已通过"), (declined, "原因：当天场地另有安排"),
    (cancelled_by_station, "原因：暴雨红色预警"),
], ids=["promoted", "approved", "declined", "cancelled_by_station"])
def test_each_change_for_the_branch_is_mailed(scene, smtp_sink, scenario, fragment):
    action = scenario(scene)
    action()
    run_jobs()
    texts = smtp_sink.wait_for_text(fragment)
    assert any(fragment in text for text, to in texts if to == ["wang@example.org"]), texts


def test_no_mail_job_without_smtp_settings(scene, app, monkeypatch):
    monkeypatch.setitem(app.config, "SMTP_HOST", None)
    services.book(scene["secretary"], scene["slot"].id, request())
    assert all_jobs() == []


def test_a_rolled_back_change_is_never_mailed(scene, smtp_sink, monkeypatch):
    """A change that was rolled back leaves no mail job behind, so nothing of it is ever sent."""
    booking = services.book(scene["secretary"], scene["slot"].id, request())
    run_jobs()
    smtp_sink.wait_for(1)

    def boom(slot):
        raise RuntimeError("database went away")

    real = services.promote_waitlist
    monkeypatch.setattr(services, "promote_waitlist", boom)
    with pytest.raises(RuntimeError):
        services.cancel(scene["host"], booking.id, "暴雨红色预警")  # notified, then failed
    db.session.rollback()  # what the error handler does
    monkeypatch.setattr(services, "promote_waitlist", real)
    other = scene["other"]
    other.email = "li@example.org"
    db.session.commit()
    services.book(other, scene["slot"].id, request())  # the next commit of this session mails...
    assert [job.payload["to"] for job in all_jobs()] == ["wang@example.org", "li@example.org"]
    run_jobs()
    envelopes = smtp_sink.wait_for(2)
    time.sleep(0.3)  # room for a stray third mail to arrive
    texts = [(parsed(e).get_content(), e.rcpt_tos) for e in smtp_sink.envelopes]
    assert len(envelopes) == 2 and [to for _text, to in texts] == [["wang@example.org"], ["li@example.org"]]  # ...its own news only
    assert not any("暴雨红色预警" in text for text, _to in texts), texts
    assert db.session.get(Booking, booking.id).status is S.CONFIRMED


# -- a dead, hanging or returning mail server ------------------------------------------------------

def timed_booking(scene, secretary_key="secretary") -> float:
    started = time.perf_counter()
    booking = services.book(scene[secretary_key], scene["slot"].id, request())
    elapsed = time.perf_counter() - started
    assert db.session.get(Booking, booking.id).status is S.CONFIRMED
    return elapsed


def test_booking_is_quick_when_the_mail_server_is_down_and_the_mail_is_retried_with_backoff(
        scene, app, monkeypatch, caplog, frozen_now):
    baseline = timed_booking(scene, "other")  # SMTP not configured
    use_smtp(app, monkeypatch, free_port())  # nothing listens there
    caplog.set_level(logging.WARNING, logger="blueprints.jobs.queue")
    elapsed = timed_booking(scene)
    print(f"\n[mail server down] booking took {elapsed * 1000:.0f} ms (without SMTP: {baseline * 1000:.0f} ms)")
    assert elapsed < 1.0
    assert run_jobs() == 0
    [job] = all_jobs()
    assert job.done_at is None and job.failed_at is None and job.attempts == 1
    assert "ConnectionRefusedError" in job.last_error
    assert job.run_after == FROZEN_NOW + timedelta(seconds=30)
    assert any("failed (attempt 1 of 8)" in r.getMessage() for r in caplog.records)
    assert run_jobs() == 0 and all_jobs()[0].attempts == 1  # not before its backoff has passed
    frozen_now.set(FROZEN_NOW + timedelta(seconds=31))
    run_jobs()
    assert all_jobs()[0].attempts == 2 and all_jobs()[0].run_after == FROZEN_NOW + timedelta(seconds=31 + 60)


def test_booking_does_not_wait_for_a_hanging_mail_server(scene, app, monkeypatch):
    """A server that accepts the connection but never greets: the job gives up on it after the
    mail timeout and is retried; the booking never waited."""
    from blueprints.booking import notifications

    monkeypatch.setattr(notifications, "MAIL_TIMEOUT", 0.3)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    try:
        use_smtp(app, monkeypatch, silent.getsockname()[1])
        elapsed = timed_booking(scene)
        print(f"\n[mail server hanging] booking took {elapsed * 1000:.0f} ms")
        assert elapsed < 1.0
        run_jobs()
        [job] = all_jobs()
        assert job.done_at is None and job.attempts == 1 and "timed out" in job.last_error
    finally:
        silent.close()


def test_mail_server_down_for_a_while_then_up_every_mail_arrives_once(scene, app, monkeypatch, frozen_now):
    from aiosmtpd.controller import Controller

    port = free_port()
    use_smtp(app, monkeypatch, port)  # down
    _approval(scene)
    services.book(scene["secretary"], scene["slot"].id, request())  # branch + host
    services.book(scene["other"], scene["slot"].id, request())  # host (the other branch has no address)
    for minutes in (1, 2, 4):  # three failed rounds
        run_jobs()
        frozen_now.set(FROZEN_NOW + timedelta(minutes=minutes))
    assert {job.attempts for job in all_jobs()} == {3} and len(all_jobs()) == 3
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()  # up again
    try:
        frozen_now.set(FROZEN_NOW + timedelta(hours=1))
        assert run_jobs() == 3
        for later in (2, 3):
            frozen_now.set(FROZEN_NOW + timedelta(hours=later))
            assert run_jobs() == 0
        envelopes = sink.wait_for(3)
        time.sleep(0.3)
        ids = [parsed(e)["Message-ID"] for e in sink.envelopes]
        assert len(envelopes) == 3 and len(set(ids)) == 3
        assert sorted(tuple(e.rcpt_tos) for e in sink.envelopes) == [
            ("host@example.org",), ("host@example.org",), ("wang@example.org",)]
    finally:
        controller.stop()


def test_a_mail_is_given_up_after_the_last_attempt_with_a_log_line(scene, app, monkeypatch, caplog, frozen_now):
    use_smtp(app, monkeypatch, free_port())
    services.book(scene["secretary"], scene["slot"].id, request())
    caplog.set_level(logging.ERROR, logger="blueprints.jobs.queue")
    moment = FROZEN_NOW
    for _attempt in range(jobs.MAX_ATTEMPTS + 2):
        run_jobs()
        moment += timedelta(hours=2)
        frozen_now.set(moment)
    [job] = all_jobs()
    assert job.attempts == jobs.MAX_ATTEMPTS and job.failed_at is not None and job.done_at is None
    assert any("given up after 8 attempts" in r.getMessage() for r in caplog.records)
    assert jobs.backlog()["given_up"] == 1 and jobs.backlog()["due"] == 0
