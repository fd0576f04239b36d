"""A model-based check of the render cache and the feeds: random walks through everything that
changes what a page or feed shows — bookings, headcounts, cancellations (with waitlist promotion),
a host moving, resizing, closing, reopening and cancelling slots, an admin renaming stations,
packages, campaigns and organisations, token resets, deactivation, and the clock passing starts
and cut-offs. After every step, for every feed: a conditional request answers 304 exactly when
the body's bytes are unchanged, and the cached body equals a fresh build; for every cached page
and fragment: the cached answer equals a fresh uncached render (but for the CSRF token).
Runs on SQLite and PostgreSQL, with the versions file and with Redis.
"""
from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest

from blueprints.booking import services as booking
from blueprints.booking.models import Booking, BookingStatus
from blueprints.core import clock
from blueprints.core.db import Busy
from blueprints.core.extensions import db
from blueprints.feeds import services as feeds
from blueprints.host import services as host

from . import factories as f
from .cache_support import use_cache
from .conftest import FROZEN_NOW

CSRF = re.compile(r'(name="csrf_token" value="|"X-CSRFToken": ")([^"]+)"')
STEPS = 35


def _plain(html: bytes) -> str:
    return CSRF.sub(r"\1TOKEN", html.decode())


class World:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.campaign = f.create_campaign(name="进博五彩先锋")
        self.stations = [f.create_station(name=f"党群服务站{i}", booking_cutoff_hours=24) for i in range(2)]
        self.packages = [f.create_package(title=f"服务包{i}", stations=self.stations, campaign=self.campaign,
                                          min_group_size=2, max_group_size=30) for i in range(2)]
        self.slots = [f.create_slot(package=self.packages[i % 2], station=self.stations[i // 2], capacity=20,
                                    starts_at=FROZEN_NOW + timedelta(hours=30 + 20 * i)) for i in range(4)]
        self.secretaries = [f.create_secretary() for _ in range(3)]
        self.hosts = [f.create_host(stations=[s]) for s in self.stations]
        self.known: dict[str, tuple[str, bytes]] = {}  # feed key -> (etag, body) last seen

    # -- the steps -------------------------------------------------------------------------------
    def book(self):
        who, slot = self.rng.choice(self.secretaries), self.rng.choice(self.slots)
        request = booking.BookingRequest(self.rng.randint(2, 12), "王书记", "13900000000", "")
        booking.book(who, slot.id, request, join_waitlist=self.rng.random() < 0.5)

    def _a_booking(self):
        ids = db.session.scalars(db.select(Booking.id).where(
            Booking.status.in_([BookingStatus.CONFIRMED, BookingStatus.PENDING, BookingStatus.WAITLISTED]))).all()
        if not ids:
            raise booking.BookingError("no booking")
        found = db.session.get(Booking, self.rng.choice(ids))
        user = next(s for s in self.secretaries if s.organisation_id == found.organisation_id)
        return user, found

    def headcount(self):
        user, found = self._a_booking()
        booking.change_headcount(user, found.id, self.rng.randint(2, 15))

    def cancel(self):
        user, found = self._a_booking()
        booking.cancel(user, found.id, "")

    def _host_slot(self):
        slot = self.rng.choice(self.slots)
        return self.hosts[self.stations.index(slot.station)], slot

    def move(self):
        user, slot = self._host_slot()
        shift = timedelta(hours=self.rng.choice([-3, 2, 26]))
        host.edit_slot(user, slot.id, starts_at=slot.starts_at + shift, ends_at=slot.ends_at + shift,
                       capacity=slot.capacity, max_groups=slot.max_groups, note=slot.note)

    def capacity(self):
        user, slot = self._host_slot()
        host.change_capacity(user, slot.id, self.rng.choice([15, 20, 30, 40]))

    def close_or_reopen(self):
        user, slot = self._host_slot()
        host.set_open(user, slot.id, self.rng.random() < 0.5)

    def cancel_slot(self):
        if self.rng.random() < 0.5:  # rarer: a cancelled slot stays cancelled
            user, slot = self._host_slot()
            host.cancel_slot(user, slot.id, "场地检修")

    def rename(self):
        target = self.rng.choice([*self.stations, *self.packages, self.campaign,
                                  *(s.organisation for s in self.secretaries)])
        attribute = "title" if hasattr(target, "title") else "name"
        setattr(target, attribute, getattr(target, attribute).split("·")[0] + f"·{self.rng.randint(1, 99)}")
        db.session.commit()

    def reset_token(self):
        who = self.rng.choice([*self.secretaries, *self.hosts])
        subscription = self.rng.choice(feeds.subscriptions_for(who))
        feeds.reset_token(who, subscription.key)

    def deactivate(self):
        who = self.rng.choice(self.secretaries)
        who.active = not who.active
        db.session.commit()

    def time_passes(self):
        clock_now = clock.now()
        self.frozen.set(clock_now + timedelta(minutes=self.rng.choice([1, 17, 60 * 6, 60 * 20, 60 * 30])))

    STEPS = ["book", "book", "book", "headcount", "cancel", "move", "capacity", "close_or_reopen",
             "cancel_slot", "rename", "reset_token", "deactivate", "time_passes", "time_passes"]

    def step(self):
        name = self.rng.choice(self.STEPS)
        try:
            getattr(self, name)()
        except (booking.BookingError, booking.NotAllowed, host.HostError, Busy):
            db.session.rollback()  # refused by the rules: changes nothing
        self.frozen.set(clock.now() + timedelta(seconds=1))  # Last-Modified: a second later
        return name

    # -- the checks ------------------------------------------------------------------------------
    def feed_paths(self) -> dict[str, str]:
        paths = {}
        for user in [*self.secretaries, *self.hosts]:
            if not user.active:
                continue
            for sub in feeds.subscriptions_for(user):
                paths[sub.key] = f"/feeds/{sub.token}.ics"
        return paths

    def page_urls(self) -> list[str]:
        urls = ["/", "/?available=y", f"/?station={self.stations[0].id}", f"/?campaign={self.campaign.id}&page=1"]
        urls += [f"/packages/{p.id}" for p in self.packages]
        urls += [f"/slots/{s.id}" for s in self.slots]
        return urls


def _fresh(app, monkeypatch, client, url, **kwargs):
    with monkeypatch.context() as m:
        m.delitem(app.extensions, "render_cache")
        return client.get(url, **kwargs)


def _check(world: World, app, monkeypatch, client, step: str):
    for key, path in world.feed_paths().items():
        fresh = _fresh(app, monkeypatch, client, path)
        if fresh.status_code == 404:
            world.known.pop(key, None)
            assert client.get(path).status_code == 404, (step, key)
            continue
        body = fresh.get_data()
        if key in world.known:
            etag, seen = world.known[key]
            conditional = client.get(path, headers={"If-None-Match": etag})
            assert (conditional.status_code == 304) == (body == seen), (step, key)
        cached = client.get(path)
        assert cached.get_data() == body, (step, key)
        assert cached.headers["ETag"] == fresh.headers["ETag"], (step, key)
        world.known[key] = (cached.headers["ETag"], body)
    for url in world.page_urls():
        for headers in ({}, {"HX-Request": "true"}):
            cached = client.get(url, headers=headers)
            fresh = _fresh(app, monkeypatch, client, url, headers=headers)
            assert cached.status_code == fresh.status_code, (step, url, headers)
            assert _plain(cached.get_data()) == _plain(fresh.get_data()), (step, url, headers)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["file", "redis"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_walk_cached_answers_equal_fresh_ones(app, monkeypatch, client, frozen_now, mode, seed):
    use_cache(app, monkeypatch, mode)
    world = World(random.Random(seed))
    world.frozen = frozen_now
    frozen_now.set(FROZEN_NOW + timedelta(seconds=1))
    _check(world, app, monkeypatch, client, "start")
    for _ in range(STEPS):
        step = world.step()
        _check(world, app, monkeypatch, client, step)
