"""The Redis validator cache of the calendar feeds: what it saves, what invalidates it, Redis down.

tests/test_feeds_routes.py runs every feed behaviour with and without the cache; these tests look
at the cache itself. The machine's Redis when TEST_REDIS_URL is set, an in-memory fake otherwise.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
import redis

from blueprints.booking.services import record
from blueprints.core.extensions import db
from blueprints.feeds import services, validator_cache
from blueprints.feeds.models import FeedKind
from blueprints.feeds.validator_cache import ValidatorCache

from . import factories as f
from .conftest import FROZEN_NOW
from .test_feeds_routes import fresh_redis


@pytest.fixture
def redis_client(app, monkeypatch):
    client = fresh_redis()
    monkeypatch.setitem(app.extensions, "feed_validator_cache", ValidatorCache(client))
    return client


def _feed(secretary) -> str:
    [sub] = services.subscriptions_for(secretary)
    return f"/feeds/{sub.token}.ics"


def _revalidate(client, path, etag, count_queries):
    with count_queries() as counter:
        response = client.get(path, headers={"If-None-Match": etag})
    return response.status_code, counter.count


def test_revalidation_costs_no_sql_until_the_organisations_own_booking_changes(
        client, frozen_now, redis_client, count_queries):
    mine, theirs = f.create_secretary(), f.create_secretary()
    booking = f.create_booking(organisation=mine.organisation)
    other = f.create_booking(organisation=theirs.organisation)  # another organisation, another station
    path = _feed(mine)
    etag = client.get(path).headers["ETag"]
    assert _revalidate(client, path, etag, count_queries) == (304, 0)

    other_slot = other.slot  # at hand, as in the booking rules, which lock it
    f.create_booking(slot=other_slot)
    f.create_slot(station=other_slot.station, package=other_slot.package)
    frozen_now.set(FROZEN_NOW + timedelta(minutes=1))
    record(other, other.status, None, "headcount_changed")
    db.session.commit()
    assert _revalidate(client, path, etag, count_queries) == (304, 0)

    booking.headcount += 1
    record(booking, booking.status, None, "headcount_changed")
    db.session.commit()
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert _revalidate(client, path, changed.headers["ETag"], count_queries) == (304, 0)


def test_a_booking_on_the_station_invalidates_its_host_and_public_feeds(client, frozen_now, redis_client,
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


def test_a_host_moving_a_slot_invalidates_the_organisation_feed(client, frozen_now, redis_client):
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


def test_a_rolled_back_change_does_not_invalidate(client, frozen_now, redis_client, count_queries):
    secretary = f.create_secretary()
    booking = f.create_booking(organisation=secretary.organisation)
    path = _feed(secretary)
    etag = client.get(path).headers["ETag"]
    before = redis_client.mget(validator_cache.GLOBAL, validator_cache.target_key(FeedKind.ORGANISATION,
                                                                                  secretary.organisation_id))
    booking.headcount += 1
    db.session.flush()
    db.session.rollback()
    db.session.commit()
    after = redis_client.mget(validator_cache.GLOBAL, validator_cache.target_key(FeedKind.ORGANISATION,
                                                                                 secretary.organisation_id))
    assert after == before
    assert _revalidate(client, path, etag, count_queries) == (304, 0)


def test_cached_validators_expire(client, frozen_now, redis_client):
    secretary = f.create_secretary()
    f.create_booking(organisation=secretary.organisation)
    client.get(_feed(secretary))
    [key] = redis_client.keys(validator_cache.PREFIX + "v:*")
    assert 0 < redis_client.ttl(key) <= validator_cache.TTL


def test_redis_down_feeds_answer_from_sql_and_writes_still_commit(app, client, frozen_now, monkeypatch,
                                                                   count_queries, caplog):
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    monkeypatch.setitem(app.extensions, "feed_validator_cache", ValidatorCache(dead))
    secretary = f.create_secretary()
    booking = f.create_booking(organisation=secretary.organisation)
    path = _feed(secretary)
    first = client.get(path)
    assert first.status_code == 200
    assert _revalidate(client, path, first.headers["ETag"], count_queries) == (304, 2)
    booking.headcount += 1
    record(booking, booking.status, None, "headcount_changed")
    db.session.commit()
    assert client.get(path, headers={"If-None-Match": first.headers["ETag"]}).status_code == 200
    assert "feed validator cache" in caplog.text


def test_cache_is_installed_only_with_redis_and_can_be_switched_off():
    from app import create_app

    from .conftest import app_config

    def installed(**config):
        application = create_app(app_config("sqlite://", **config))
        return "feed_validator_cache" in application.extensions

    assert not installed()
    assert installed(REDIS_URL="redis://127.0.0.1:6379/15")
    assert not installed(REDIS_URL="redis://127.0.0.1:6379/15", FEED_VALIDATOR_CACHE=False)


def test_a_login_does_not_invalidate_feeds_but_deactivating_the_user_does(client, login, frozen_now,
                                                                           redis_client, count_queries):
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
