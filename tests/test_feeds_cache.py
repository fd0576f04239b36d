"""The feed documents in the render cache: what a hit saves, what invalidates it, and the three
304s an outside check found hiding a change. Each test runs with the per-process entries and the
versions file (the SQLite default) and with Redis (the machine's when TEST_REDIS_URL is set, an
in-memory fake otherwise); tests/test_feeds_routes.py runs every feed behaviour in all modes.
"""
from __future__ import annotations

from datetime import timedelta

import icalendar
import pytest
import redis

from blueprints.booking.models import BookingStatus
from blueprints.booking.services import record
from blueprints.core import changes
from blueprints.core.extensions import db
from blueprints.feeds import services

from . import factories as f
from .cache_support import use_cache
from .conftest import FROZEN_NOW


@pytest.fixture(params=["file", "redis"])
def cache_mode(request, app, monkeypatch):
    use_cache(app, monkeypatch, request.param)
    return request.param


def _feed(user, kind=None) -> str:
    subs = services.subscriptions_for(user)
    sub = next(s for s in subs if kind is None or getattr(s.kind, "value", s.kind) == kind)
    return f"/feeds/{sub.token}.ics"


def _revalidate(client, path, etag, count_queries):
    with count_queries() as counter:
        response = client.get(path, headers={"If-None-Match": etag})
    return response.status_code, counter.count


def _later(frozen_now, **delta):
    frozen_now.set(frozen_now.now + timedelta(**delta))


def test_revalidation_costs_no_sql_until_the_organisations_own_booking_changes(
        client, frozen_now, cache_mode, count_queries):
    mine, theirs = f.create_secretary(), f.create_secretary()
    booking = f.create_booking(organisation=mine.organisation)
    other = f.create_booking(organisation=theirs.organisation)  # another organisation, another station
    path = _feed(mine)
    etag = client.get(path).headers["ETag"]
    assert _revalidate(client, path, etag, count_queries) == (304, 0)

    f.create_booking(slot=other.slot)
    f.create_slot(station=other.slot.station, package=other.slot.package)
    _later(frozen_now, minutes=1)
    record(other, other.status, None, "headcount_changed")
    db.session.commit()
    assert _revalidate(client, path, etag, count_queries) == (304, 0)

    booking.headcount += 1
    record(booking, booking.status, None, "headcount_changed")
    db.session.commit()
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert _revalidate(client, path, changed.headers["ETag"], count_queries) == (304, 0)


def test_a_booking_on_the_station_invalidates_its_host_and_public_feeds(client, frozen_now, cache_mode,
                                                                         count_queries):
    station = f.create_station()
    host = f.create_host(stations=[station])
    slot = f.create_slot(station=station)
    f.create_booking(slot=slot)
    paths = [f"/feeds/{s.token}.ics" for s in services.subscriptions_for(host)]
    etags = {path: client.get(path).headers["ETag"] for path in paths}
    assert all(_revalidate(client, p, etags[p], count_queries) == (304, 0) for p in paths)
    f.create_booking(slot=slot)
    for path in paths:
        assert client.get(path, headers={"If-None-Match": etags[path]}).status_code == 200


def test_a_host_moving_a_slot_invalidates_the_organisation_feed(client, frozen_now, cache_mode):
    secretary = f.create_secretary()
    booking = f.create_booking(organisation=secretary.organisation)
    path = _feed(secretary)
    etag = client.get(path).headers["ETag"]
    slot = booking.slot
    slot.starts_at += timedelta(hours=1)
    slot.ends_at += timedelta(hours=1)
    slot.revision += 1
    db.session.commit()
    moved = client.get(path, headers={"If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["ETag"] != etag


def test_a_rolled_back_change_bumps_no_version(app, client, frozen_now, cache_mode, count_queries):
    secretary = f.create_secretary()
    booking = f.create_booking(organisation=secretary.organisation)
    path = _feed(secretary)
    etag = client.get(path).headers["ETag"]
    scopes = [changes.GLOBAL, changes.organisation(secretary.organisation_id), changes.SEQUENCE]
    before = changes.versions().read(scopes)
    booking.headcount += 1
    db.session.flush()
    db.session.rollback()
    db.session.commit()
    assert changes.versions().read(scopes) == before
    assert _revalidate(client, path, etag, count_queries) == (304, 0)


def test_a_login_does_not_invalidate_feeds_but_deactivating_the_user_does(client, login, frozen_now,
                                                                           cache_mode, count_queries):
    secretary = f.create_secretary()
    f.create_booking(organisation=secretary.organisation)
    path = _feed(secretary)
    etag = client.get(path).headers["ETag"]
    login(secretary)
    client.post("/logout")
    assert _revalidate(client, path, etag, count_queries) == (304, 0)
    secretary.active = False
    db.session.commit()
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 404


# -- the three 304s that hid a change ---------------------------------------------------------------

def test_lie1_renaming_an_organisation_changes_the_host_feed_that_lists_it(client, frozen_now, cache_mode):
    station = f.create_station()
    host = f.create_host(stations=[station])
    booking = f.create_booking(slot=f.create_slot(station=station))
    path = _feed(host, "station")
    _later(frozen_now, seconds=1)
    first = client.get(path)
    _later(frozen_now, minutes=3)
    booking.organisation.name = "改名后的党支部"
    db.session.commit()
    _later(frozen_now, seconds=1)
    renamed = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert renamed.status_code == 200 and "改名后的党支部" in renamed.get_data().decode()
    assert renamed.headers["ETag"] != first.headers["ETag"]
    assert client.get(path, headers={"If-Modified-Since": first.headers["Last-Modified"]}).status_code == 200
    [event] = icalendar.Calendar.from_ical(renamed.get_data()).walk("VEVENT")
    assert event.decoded("last-modified") == (FROZEN_NOW + timedelta(minutes=3, seconds=1))


def test_lie2_two_changes_within_one_second_never_hide_behind_if_modified_since(client, frozen_now, cache_mode):
    secretary = f.create_secretary()
    booking = f.create_booking(organisation=secretary.organisation)
    path = _feed(secretary)
    _later(frozen_now, minutes=1, microseconds=100_000)
    booking.headcount = 12
    record(booking, booking.status, None, "headcount_changed")
    db.session.commit()
    _later(frozen_now, microseconds=100_000)  # the same second as the change
    first = client.get(path)
    assert "Last-Modified" not in first.headers and first.headers["ETag"]
    _later(frozen_now, microseconds=500_000)  # a second change within the same second
    booking.headcount = 13
    record(booking, booking.status, None, "headcount_changed")
    db.session.commit()
    _later(frozen_now, seconds=1)
    second = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200 and second.headers["Last-Modified"]
    assert client.get(path, headers={"If-Modified-Since": second.headers["Last-Modified"]}).status_code == 304
    # A client that kept a date from before the change (the day's start) sees the change.
    assert client.get(path, headers={"If-Modified-Since": "Mon, 23 Nov 2026 00:00:00 GMT"}).status_code == 200


def test_lie3_a_slot_that_starts_leaves_the_public_feed_at_once(client, frozen_now, cache_mode, count_queries):
    station = f.create_station()
    host = f.create_host(stations=[station])
    soon = f.create_slot(station=station, starts_at=FROZEN_NOW + timedelta(minutes=10))
    f.create_slot(station=station, starts_at=FROZEN_NOW + timedelta(days=3))
    path = _feed(host, "public")
    first = client.get(path)
    assert f"open-slot-{soon.id}@" in first.get_data().decode()
    _later(frozen_now, minutes=9)
    assert _revalidate(client, path, first.headers["ETag"], count_queries) == (304, 0)
    _later(frozen_now, minutes=1)  # the slot starts
    after = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert after.status_code == 200 and f"open-slot-{soon.id}@" not in after.get_data().decode()


# -- SEQUENCE and LAST-MODIFIED follow every change of an event ----------------------------------

def test_moving_a_slot_raises_the_sequence_of_a_booking_cancelled_before(client, frozen_now):
    secretary = f.create_secretary()
    booking = f.create_booking(organisation=secretary.organisation, status=BookingStatus.CANCELLED)
    path = _feed(secretary)
    before = icalendar.Calendar.from_ical(client.get(path).get_data()).walk("VEVENT")[0]
    slot = booking.slot
    slot.starts_at += timedelta(hours=2)
    slot.ends_at += timedelta(hours=2)
    slot.revision += 1
    db.session.commit()
    after = icalendar.Calendar.from_ical(client.get(path).get_data()).walk("VEVENT")[0]
    assert after.decoded("dtstart") != before.decoded("dtstart")
    assert after["sequence"] > before["sequence"]


def test_places_left_move_the_public_events_last_modified(client, frozen_now):
    station = f.create_station()
    host = f.create_host(stations=[station])
    slot = f.create_slot(station=station)
    path = _feed(host, "public")
    before = icalendar.Calendar.from_ical(client.get(path).get_data()).walk("VEVENT")[0]
    _later(frozen_now, minutes=7)
    f.create_booking(slot=slot, headcount=5)
    after = icalendar.Calendar.from_ical(client.get(path).get_data()).walk("VEVENT")[0]
    assert str(after["description"]) != str(before["description"])
    assert after.decoded("last-modified") == FROZEN_NOW + timedelta(minutes=7)


# -- expiry, Redis down, installation ----------------------------------------------------------------

def test_redis_down_feeds_answer_from_sql_and_writes_still_commit(app, client, frozen_now, monkeypatch, caplog):
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    use_cache(app, monkeypatch, "redis", client=dead)
    secretary = f.create_secretary()
    booking = f.create_booking(organisation=secretary.organisation)
    path = _feed(secretary)
    first = client.get(path)
    assert first.status_code == 200
    assert client.get(path, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    booking.headcount += 1
    record(booking, booking.status, None, "headcount_changed")
    db.session.commit()
    assert client.get(path, headers={"If-None-Match": first.headers["ETag"]}).status_code == 200
    assert "could not bump" in caplog.text  # and no entry was trusted meanwhile


def test_after_a_failed_bump_no_entry_is_trusted_until_the_bump_goes_through(app, client, frozen_now,
                                                                              monkeypatch, count_queries):
    """Redis fails just when a booking commits: the entries still match the old versions, so this
    process serves nothing from the cache until the missed bump (and a global one) is made."""
    from blueprints.core import changes

    use_cache(app, monkeypatch, "redis")
    secretary = f.create_secretary()
    booking = f.create_booking(organisation=secretary.organisation)
    path = _feed(secretary)
    etag = client.get(path).headers["ETag"]
    store = app.extensions["change_versions"]
    with monkeypatch.context() as m:
        m.setattr(store, "bump", lambda keys: (_ for _ in ()).throw(redis.ConnectionError("down")))
        booking.headcount += 2
        record(booking, booking.status, None, "headcount_changed")
        db.session.commit()
        assert changes.failed_bumps(app)
        # Redis answers reads again but the bump is not through yet: never the stale 304.
        assert client.get(path, headers={"If-None-Match": etag}).status_code == 200
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 200  # the retry bumps
    assert not changes.failed_bumps(app)
    fresh = client.get(path).headers["ETag"]
    assert _revalidate(client, path, fresh, count_queries) == (304, 0)


def test_versions_in_redis_with_redis_url_else_in_the_instance_file(tmp_path):
    from app import create_app

    from .conftest import app_config

    def stores(**config):
        application = create_app(app_config("sqlite://", CACHE_VERSIONS_FILE=tmp_path / "v.bin", **config))
        return type(application.extensions["change_versions"]), "render_cache" in application.extensions

    assert stores() == (changes.FileVersions, True)
    assert stores(REDIS_URL="redis://127.0.0.1:6379/15") == (changes.RedisVersions, True)
    assert stores(RENDER_CACHE=False)[1] is False


def test_cache_clear_command_invalidates_every_entry(app, client, frozen_now, cache_mode, count_queries):
    secretary = f.create_secretary()
    f.create_booking(organisation=secretary.organisation)
    path = _feed(secretary)
    etag = client.get(path).headers["ETag"]
    result = app.test_cli_runner().invoke(args=["cache", "clear"])
    assert result.exit_code == 0 and "cache cleared" in result.output
    status, queries = _revalidate(client, path, etag, count_queries)
    assert status == 304 and queries > 0  # built again from the database


def test_a_recreated_versions_file_never_matches_old_versions(tmp_path):
    first = changes.FileVersions(tmp_path / "v.bin")
    before = first.read(["slot:1"])
    (tmp_path / "v.bin").unlink()
    second = changes.FileVersions(tmp_path / "v.bin")
    assert second.read(["slot:1"]) != before
    assert first.read(["slot:1"]) == second.read(["slot:1"])  # the old handle follows the new file


def test_file_versions_are_shared_between_processes(tmp_path):
    import multiprocessing

    store = changes.FileVersions(tmp_path / "v.bin")
    before = store.read(["slot:7", "slot:8"])
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_bump_in_child, args=(str(tmp_path / "v.bin"),))
    process.start()
    process.join(30)
    assert process.exitcode == 0
    after = store.read(["slot:7", "slot:8"])
    assert after[0] != before[0]


def _bump_in_child(path):
    changes.FileVersions(path).bump({"slot:7"})
