"""Profiles of the two paths a rush is made of, on the bench's city database (run `make bench` once first).

    .venv/bin/python bench/profile_paths.py refusal   # POST /slots/<full rush slot>/book -> 422
    .venv/bin/python bench/profile_paths.py menu      # the first menu view after a booking of a listed slot
    .venv/bin/python bench/profile_paths.py feed      # a 200-event feed fetched after one of its bookings changed
    .venv/bin/python bench/profile_paths.py booking   # POST /slots/<rush slot>/book -> 302, the slot reset in between

Prints the SQL of one request, the median CPU of 60, and a cProfile of 60 more.
"""
from __future__ import annotations

import cProfile
import os
import pstats
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402

ROUNDS = 60


def _statements(request) -> list[str]:
    from sqlalchemy import event

    from blueprints.core.extensions import db

    seen: list[str] = []

    def before(conn, cursor, statement, *args):
        seen.append(" ".join(statement.split())[:160])

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        request()
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
    return seen


def _measure(prepare, request) -> None:
    print("\n".join(["SQL " + s for s in _statements(request)]))
    samples = []
    for n in range(ROUNDS):
        prepare(n)
        started = time.process_time()
        request()
        samples.append(time.process_time() - started)
    print(f"median CPU ms: {statistics.median(samples) * 1000:.1f}")
    profile = cProfile.Profile()
    for n in range(ROUNDS):
        prepare(n)
        profile.enable()
        request()
        profile.disable()
    pstats.Stats(profile).sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(50)


def refusal(app, targets) -> None:
    slot_id = targets["rush"][0]
    for n in range(2, 60):  # fill the slot
        client = bench.logged_in_client(app, f"sec{n}")
        if client.post(f"/slots/{slot_id}/book", data=bench.book_form(client, slot_id, n, 8)).status_code == 422:
            break
    client = bench.logged_in_client(app, "sec60")
    form = bench.book_form(client, slot_id, 60, 5)
    try:
        _measure(lambda n: None, lambda: client.post(f"/slots/{slot_id}/book", data=form))
    finally:
        bench.reset_rush(app, targets["rush"])


def menu(app, targets) -> None:
    from blueprints.core import changes

    client = app.test_client()
    client.environ_base.update(HTTP_USER_AGENT=bench.USER_AGENT)
    url = "/?category=theory"
    slot_ids = re.findall(r'data-slot-id="(\d+)"', client.get(url).get_data(as_text=True))

    def prepare(n: int) -> None:
        changes.bump({changes.slot(slot_ids[n % len(slot_ids)])})

    prepare(0)
    _measure(prepare, lambda: client.get(url))


def feed(app, targets) -> None:
    import sqlalchemy as sa

    from blueprints.booking.models import Booking, BookingStatus
    from blueprints.core.extensions import db
    from blueprints.feeds import services as feeds

    client = app.test_client()
    client.environ_base.update(HTTP_USER_AGENT=bench.USER_AGENT)
    url = f"/feeds/{targets['token']}.ics"
    client.get(url)
    organisation_id = feeds.resolve(targets["token"]).target_id
    booking = db.session.scalar(sa.select(Booking).where(
        Booking.organisation_id == organisation_id, Booking.status == BookingStatus.CONFIRMED).limit(1))

    def prepare(n: int) -> None:
        booking.headcount += 1 if n % 2 == 0 else -1
        db.session.commit()

    prepare(0)
    _measure(prepare, lambda: client.get(url))


def booking(app, targets) -> None:
    slot_id = targets["rush"][0]
    client = bench.logged_in_client(app, "sec2")
    forms = {}

    def prepare(n: int) -> None:
        bench.reset_rush(app, targets["rush"])
        forms["data"] = bench.book_form(client, slot_id, 2, 5)

    def request():
        assert client.post(f"/slots/{slot_id}/book", data=forms["data"]).status_code == 302

    prepare(0)
    try:
        _measure(prepare, request)
    finally:
        bench.reset_rush(app, targets["rush"])


if __name__ == "__main__":
    which = {"refusal": refusal, "menu": menu, "feed": feed, "booking": booking}[sys.argv[1] if len(sys.argv) > 1 else "refusal"]
    with bench.application(bench.CITY_URL) as application:
        which(application, bench.find_targets(application, city=True))
