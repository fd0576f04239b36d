"""Crash safety: gunicorn workers are killed with SIGKILL, again and again, during a booking rush
(bookings, waitlist, cancellations that promote the waitlist). Afterwards every booking has its
history, no slot is over capacity, and every request that got an answer got a proper one.

Runs on PostgreSQL (when TEST_DATABASE_URL is set) and on SQLite (a file in WAL mode), the two
databases the app supports; a killed worker's open transaction must vanish on both."""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
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

SECRETARIES = 24
SLOTS = 3
CAPACITY = 12
PASSWORD = "correct horse battery"
MIN_KILLS = 5
MIN_BOOKING_ANSWERS = 24
# The rush lasts at least the first, at most the second number of seconds; in between it ends
# once MIN_KILLS workers were killed and MIN_BOOKING_ANSWERS booking requests were answered.
RUSH_SECONDS = (4, 60)
KILL_EVERY = 0.5  # seconds between two kills
WORKERS = 3


@pytest.fixture(autouse=True)
def app_ctx():
    """These tests make their own database and server; no per-test app of conftest."""
    yield


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    else:
        with fresh_postgres_database("ops_crash") as url:
            yield url


def _seed(url: str) -> list[int]:
    app = make_app(url)
    with app.app_context():
        from blueprints.core.extensions import db

        package = factories.create_package()
        slot_ids = [factories.create_slot(package=package, capacity=CAPACITY).id for _ in range(SLOTS)]
        seed_secretaries(SECRETARIES, PASSWORD, prefix="crash")
        db.session.remove()
        db.engine.dispose()
    return slot_ids


class Tally:
    """Every answer by status code; connection errors (a killed worker) counted apart."""

    def __init__(self):
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.connection_errors = 0
        self.bookings = 0  # booking POSTs answered

    def call(self, function, *args, **kwargs):
        try:
            response = function(*args, **kwargs)
        except requests.RequestException:  # refused, reset, cut off mid-body, timed out
            with self.lock:
                self.connection_errors += 1
            return None
        with self.lock:
            self.statuses[response.status_code] += 1
        return response


def _client_script(secretary: Secretary, base_url: str, slot_ids: list[int], tally: Tally,
                   rush_over, rng: random.Random) -> None:
    """Log in and read a form's CSRF token, then book slots (sometimes asking for the waitlist)
    and cancel some of the bookings, until the rush is over. A request cut off by a killed
    worker is counted and the script goes on (a login or token is tried again)."""
    logged_in = False
    while not rush_over():
        if not logged_in:
            response = tally.call(secretary.login, base_url)
            logged_in = response is not None and response.status_code == 302
            continue
        if not secretary.csrf:
            tally.call(secretary.open_slot, base_url, slot_ids[0])
            continue
        response = tally.call(secretary.book, base_url, rng.choice(slot_ids), rng.choice((2, 3, 4)),
                              waitlist=rng.random() < 0.5)
        if response is None:
            continue
        with tally.lock:
            tally.bookings += 1
        booking_id = booking_id_from(response)
        if booking_id and rng.random() < 0.4:
            tally.call(secretary.cancel, base_url, booking_id)


def test_killing_workers_during_a_booking_rush_leaves_consistent_bookings(database_url, tmp_path):
    began = time.monotonic()
    flask_db_upgrade(database_url)
    slot_ids = _seed(database_url)
    server = Gunicorn(database_url, tmp_path, "crash", workers=WORKERS).start().wait_ready()
    booted = time.monotonic()
    tally = Tally()
    kills = []
    try:
        started = time.monotonic()
        stop_killing = threading.Event()

        def rush_over() -> bool:
            elapsed = time.monotonic() - started
            return elapsed >= RUSH_SECONDS[1] or (
                elapsed >= RUSH_SECONDS[0] and len(kills) >= MIN_KILLS and tally.bookings >= MIN_BOOKING_ANSWERS
            )

        def killer():
            """Every KILL_EVERY seconds SIGKILL one worker that has booted and served (it is in
            the access log), as long as another such worker is left; with many clients queueing
            for few workers, the victim is almost always in the middle of a request."""
            rng = random.Random(7)
            while not stop_killing.wait(KILL_EVERY):
                served = server.served_pids()
                ready = [pid for pid in server.worker_pids() if pid in served]
                if len(ready) < 2:
                    continue
                victim = rng.choice(ready)
                try:
                    os.kill(victim, signal.SIGKILL)
                    kills.append(victim)
                except ProcessLookupError:
                    pass

        killer_thread = threading.Thread(target=killer, daemon=True)
        killer_thread.start()
        secretaries = [Secretary(f"crashsec{n}", PASSWORD, timeout=15) for n in range(SECRETARIES)]
        with ThreadPoolExecutor(max_workers=SECRETARIES) as pool:
            futures = [pool.submit(_client_script, secretary, server.base_url, slot_ids, tally, rush_over,
                                   random.Random(n)) for n, secretary in enumerate(secretaries)]
            for future in futures:
                future.result()
        stop_killing.set()
        killer_thread.join()
        rushed = time.monotonic()
        # The master replaced the killed workers and still serves.
        server.wait_ready(timeout=60)
    finally:
        server.stop()

    answered = sum(tally.statuses.values())
    print(f"\nset-up {booted - began:.1f}s, rush {rushed - booted:.1f}s; {len(kills)} workers killed; {answered} answers {dict(tally.statuses)}; "
          f"{tally.connection_errors} connection errors from killed workers")
    assert len(kills) >= MIN_KILLS, "the machine was too slow to boot workers as fast as they were killed"
    assert tally.bookings >= MIN_BOOKING_ANSWERS
    assert tally.statuses[500] == 0
    improper = {status: n for status, n in tally.statuses.items() if not (200 <= status < 500 or status == 503)}
    assert improper == {}, tally.statuses
    assert tally.statuses[302] > 0  # logins and bookings did get through

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        violations = invariant_violations(connection)
        bookings = connection.scalar(sa.text("SELECT count(*) FROM bookings"))
        multi_event = connection.scalar(sa.text(
            "SELECT count(*) FROM (SELECT booking_id FROM booking_events GROUP BY booking_id HAVING count(*) > 1) x"))
    engine.dispose()
    print(f"{bookings} bookings, {multi_event} with more than one event")
    assert bookings > 0
    assert violations == {name: [] for name in violations}
