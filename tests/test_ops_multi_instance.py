"""Two gunicorn instances (the production configuration) on one PostgreSQL database, migrated
with ``flask db upgrade``, and one Redis: a booking rush split across both never overbooks,
sessions and login rate limits are shared, and both write JSON logs with request ids."""
from __future__ import annotations

import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from . import factories
from .ops_support import (
    Gunicorn,
    Secretary,
    booking_id_from,
    flask_db_upgrade,
    fresh_postgres_database,
    invariant_violations,
    make_app,
    seed_secretaries,
)

pytestmark = pytest.mark.slow

SECRETARIES = 50
CAPACITY = 30
HEADCOUNT = 3  # so exactly CAPACITY // HEADCOUNT bookings fit
PASSWORD = "correct horse battery"
LOGIN_LIMIT = 3  # failed logins per account and minute, for the shared-limit test


@pytest.fixture(autouse=True)
def app_ctx():
    """These tests make their own database and servers; no per-test app of conftest."""
    yield


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    redis_url = os.environ.get("TEST_REDIS_URL")
    with fresh_postgres_database("ops_multi") as url:
        flask_db_upgrade(url)
        app = make_app(url)
        with app.app_context():
            from blueprints.core.extensions import db

            slot = factories.create_slot(capacity=CAPACITY)
            usernames = seed_secretaries(SECRETARIES, PASSWORD, prefix="multi")
            slot_id = slot.id
            quiet_slot_id = factories.create_slot(capacity=40, package=slot.package, station=slot.station).id
            db.session.remove()
            db.engine.dispose()
        logs = tmp_path_factory.mktemp("gunicorn")
        env = {"REDIS_URL": redis_url, "LOGIN_RATE_LIMIT": f"{LOGIN_LIMIT} per minute"}
        instances = [Gunicorn(url, logs, name, workers=2, **env) for name in ("a", "b")]
        try:
            for instance in instances:
                instance.start()
            for instance in instances:
                instance.wait_ready()
            yield {"url": url, "instances": instances, "slot_id": slot_id, "usernames": usernames,
                   "redis": bool(redis_url), "quiet_slot_id": quiet_slot_id}
        finally:
            for instance in instances:
                instance.stop()


def test_a_booking_rush_split_across_two_instances_never_exceeds_capacity(cluster):
    a, b = cluster["instances"]
    slot_id = cluster["slot_id"]
    secretaries = [Secretary(name, PASSWORD) for name in cluster["usernames"]]

    # Log in on one instance and book on the other: the session (signed cookie, shared
    # SECRET_KEY) and its CSRF token are valid on every instance.
    def prepare(index_and_secretary):
        index, secretary = index_and_secretary
        login_on, book_on = (a, b) if index % 2 else (b, a)
        assert secretary.login(login_on.base_url).status_code == 302
        assert secretary.open_slot(book_on.base_url, slot_id).status_code == 200
        return book_on

    with ThreadPoolExecutor(max_workers=16) as pool:
        targets = list(pool.map(prepare, enumerate(secretaries)))

    start = threading.Barrier(len(secretaries))

    def rush(index):
        start.wait()
        request_id = f"rush-{index}"
        response = secretaries[index].book(targets[index].base_url, slot_id, HEADCOUNT, request_id=request_id)
        return response.status_code, response.headers.get("X-Request-ID"), booking_id_from(response), response.text

    with ThreadPoolExecutor(max_workers=len(secretaries)) as pool:
        results = list(pool.map(rush, range(len(secretaries))))

    statuses = [status for status, *_ in results]
    assert 500 not in statuses
    assert set(statuses) <= {302, 422, 503}, statuses
    booked = [booking for status, _, booking, _ in results if status == 302]
    refused = [text for status, *_, text in results if status == 422]
    assert len(booked) == CAPACITY // HEADCOUNT, statuses
    assert refused and all("候补" in text for text in refused)  # "…or join the waitlist"
    assert [rid for _, rid, *_ in results] == [f"rush-{i}" for i in range(len(secretaries))]

    engine = sa.create_engine(cluster["url"], poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        held = connection.scalar(sa.text(
            "SELECT coalesce(sum(headcount), 0) FROM bookings "
            "WHERE slot_id = :slot AND status IN ('pending', 'confirmed', 'attended')"), {"slot": slot_id})
        stored = connection.scalars(sa.text("SELECT id FROM bookings WHERE slot_id = :slot"),
                                    {"slot": slot_id}).all()
        violations = invariant_violations(connection)
    engine.dispose()
    assert held == CAPACITY
    assert sorted(stored) == sorted(booked)
    assert violations == {name: [] for name in violations}
    # Both instances took part in the rush.
    for instance in (a, b):
        assert '"path": "/slots/%d/book"' % slot_id in instance.log_text()


def test_a_booking_on_one_instance_shows_at_once_on_the_other_instances_cached_pages(cluster):
    import requests

    a, b = cluster["instances"]
    slot_id = cluster["quiet_slot_id"]
    pages = [f"/slots/{slot_id}", "/", f"/slots/{slot_id}/places"]

    def remaining_on(instance) -> set[str]:
        seen = set()
        for path in pages:
            for _ in range(4):  # reach both workers of the instance
                headers = {"HX-Request": "true"} if path.endswith("/places") else {}
                html = requests.get(instance.base_url + path, headers=headers, timeout=20).text
                seen |= set(re.findall(rf'id="places-{slot_id}"[^>]*data-remaining="(\d+)"', html))
                seen |= set(re.findall(rf'data-slot-id="{slot_id}">.*?data-remaining="(\d+)"', html, re.S))
        return seen

    assert remaining_on(b) == {"40"}  # now cached on b's workers
    secretary = Secretary(cluster["usernames"][-1], PASSWORD)
    assert secretary.login(a.base_url).status_code == 302
    assert secretary.open_slot(a.base_url, slot_id).status_code == 200
    assert secretary.book(a.base_url, slot_id, 6).status_code == 302
    assert remaining_on(b) == {"34"}


def test_both_instances_log_json_lines_with_the_request_id(cluster):
    import requests

    for instance in cluster["instances"]:
        response = requests.get(instance.base_url + "/healthz", headers={"X-Request-ID": "probe-42"}, timeout=5)
        assert response.headers["X-Request-ID"] == "probe-42"
        generated = requests.get(instance.base_url + "/healthz", timeout=5).headers["X-Request-ID"]
        assert len(generated) == 32
        health = response.json()
        assert health.pop("jobs")["given_up"] == 0  # the backlog rides along (README: Background jobs)
        if cluster["redis"]:
            assert health == {"status": "ok", "database": "ok", "redis": "ok"}
        else:
            assert health == {"status": "ok", "database": "ok"}
    for instance in cluster["instances"]:
        instance_log = instance.log_text()
        lines = [json.loads(line) for line in instance_log.splitlines() if line.strip()]
        access = [line for line in lines if line.get("event") == "access"]
        assert any(line["request_id"] == "probe-42" and line["path"] == "/healthz" and line["status"] == 200
                   for line in access)
        assert all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)


def test_a_login_rate_limit_reached_on_one_instance_holds_on_the_other(cluster):
    if not cluster["redis"]:
        pytest.skip("needs Redis (TEST_REDIS_URL): without it each instance counts attempts in its own memory")
    a, b = cluster["instances"]
    victim = Secretary(cluster["usernames"][0], PASSWORD)
    for _ in range(LOGIN_LIMIT):
        assert victim.login(a.base_url, password="wrong password").status_code == 422
    limited = victim.login(b.base_url)  # the right password, on the other instance
    assert limited.status_code == 429
    assert "登录" in limited.text
    # The limit is per account: another secretary still gets in, on either instance.
    assert Secretary(cluster["usernames"][1], PASSWORD).login(b.base_url).status_code == 302
