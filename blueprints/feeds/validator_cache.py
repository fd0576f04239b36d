"""Feed validators kept in Redis, so that a calendar's revalidation (304) asks PostgreSQL nothing.

Calendar apps re-fetch every feed about once an hour and almost always get "304 Not Modified".
Without this cache each 304 costs two SQL statements; with ``REDIS_URL`` set it costs two Redis
round trips. Shared by every app instance, invalidated by generation counters:

* a committed write of a booking bumps its organisation's and its station's generation;
* a new slot bumps its station's generation;
* a committed write of anything else a feed shows (changed slots, stations, packages,
  organisations, users, tokens) bumps the global generation;
* a cached validator is used only while the generations it was computed under are current,
  and for at most ``TTL`` seconds (feeds also change as time passes: past events leave).

Generations are read before the validator's SQL and bumped after the commit, so a validator can
only ever be stored under generations older than the data it saw. Redis being down only means
the SQL path: every Redis error falls back to it.
"""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.orm import ONETOMANY, RelationshipProperty, Session
from sqlalchemy.orm.util import identity_key

from blueprints.accounts.models import Organisation, User
from blueprints.booking.models import Booking
from blueprints.catalog.models import Campaign, Package, Slot, Station
from blueprints.core.shared_state import redis_client

from . import services
from .models import FeedKind, FeedToken
from .services import Feed, Validator

log = logging.getLogger(__name__)

TTL = 60
PREFIX = "partyday:feeds:"
GLOBAL = PREFIX + "gen"
# Writes of these change what some feed shows in ways not worth tracing to single feeds.
GLOBAL_CLASSES = (Slot, Station, Package, Campaign, Organisation, User, FeedToken)
GLOBAL_TABLES = frozenset(cls.__table__.name for cls in GLOBAL_CLASSES + (Booking,)) | {
    "station_hosts", "package_stations"}
# Of a user, only what decides which feeds their tokens open (not logins, passwords, sessions).
FEED_RELEVANT = {User: frozenset({"active", "role", "organisation_id", "organisation", "stations"})}
_STALE = "feeds_stale"  # session.info: generation keys to bump after the commit


def target_key(kind, target_id: int) -> str:
    """Organisation feeds follow their organisation; host and public feeds their station."""
    scope = "org" if kind is FeedKind.ORGANISATION else "station"
    return f"{PREFIX}{scope}:{target_id}"


class ValidatorCache:
    def __init__(self, client):
        self.client = client

    def _entry_key(self, token: str, base_url: str) -> str:
        digest = hashlib.sha256(f"{token}|{base_url}".encode()).hexdigest()[:40]
        return f"{PREFIX}v:{digest}"

    def generations(self, *keys: str) -> list[int]:
        return [int(value or 0) for value in self.client.mget(GLOBAL, *keys)]

    def lookup(self, token: str, base_url: str) -> tuple[str, datetime] | None:
        """(etag, last_modified) while still current, else None."""
        raw = self.client.get(self._entry_key(token, base_url))
        if raw is None:
            return None
        entry = json.loads(raw)
        if self.generations(entry["target"]) != entry["generations"]:
            return None
        return entry["etag"], datetime.fromisoformat(entry["last_modified"])

    def store(self, token: str, base_url: str, target: str, generations: list[int], etag: str,
              last_modified: datetime) -> None:
        entry = {"target": target, "generations": generations, "etag": etag,
                 "last_modified": last_modified.isoformat()}
        self.client.set(self._entry_key(token, base_url), json.dumps(entry), ex=TTL)

    def bump(self, keys: set[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key in sorted(keys):
            pipe.incr(key)
            pipe.expire(key, 7 * 24 * 3600)
        pipe.execute()


def current() -> ValidatorCache | None:
    if not has_app_context():
        return None
    return current_app.extensions.get("feed_validator_cache")


def install(app) -> None:
    """Use the cache when Redis is configured (``FEED_VALIDATOR_CACHE=0`` switches it off)."""
    url = app.config.get("REDIS_URL")
    if not url or not app.config.get("FEED_VALIDATOR_CACHE", True):
        return
    app.extensions["feed_validator_cache"] = ValidatorCache(redis_client(app))


# -- the feed route's two steps; every Redis error falls back to SQL -------------------------------

def cached_validator(token: str, base_url: str) -> Validator | None:
    cache = current()
    hit = _safely(lambda: cache.lookup(token, base_url)) if cache else None
    return Validator(*hit) if hit else None


def resolve_and_validate(token: str, base_url: str) -> tuple[Feed | None, Validator | None]:
    """The feed and its validator from SQL, kept for the next revalidation when Redis is there."""
    cache = current()
    before = _safely(lambda: cache.generations()) if cache else None  # before any SQL
    found = services.resolve(token)
    if found is None:
        return None, None
    target = target_key(found.kind, found.target_id)
    target_before = _safely(lambda: cache.generations(target)) if before else None
    validator = services.validator(found, base_url)
    if before and target_before:
        _safely(lambda: cache.store(token, base_url, target, before[:1] + target_before[1:],
                                    validator.etag, validator.last_modified))
    return found, validator


def _safely(action):
    try:
        return action()
    except Exception as exc:  # noqa: BLE001 - the cache is an optimisation
        log.warning("feed validator cache unavailable: %s", exc)
        return None


# -- invalidation: which generations a session's writes make stale ------------------------------

def _mark(session: Session, keys: set[str]) -> None:
    session.info.setdefault(_STALE, set()).update(keys)


def _id_of(obj, relationship: str) -> int | None:
    """A many-to-one's id before the flush has copied it into the foreign key column."""
    related = obj.__dict__.get(relationship)
    return related.id if related is not None else getattr(obj, f"{relationship}_id")


def _really_changed(obj) -> bool:
    """A column or a many-to-many link changed, not just a back-populated list of children."""
    state = sa.inspect(obj)
    watched = FEED_RELEVANT.get(type(obj))
    for attr in state.attrs:
        if watched is not None and attr.key not in watched:
            continue
        if not attr.history.has_changes():
            continue
        prop = state.mapper.attrs[attr.key]
        if isinstance(prop, RelationshipProperty) and prop.direction is ONETOMANY:
            continue  # the child row carries the change and is in the flush itself
        return True
    return False


def _station_of(session: Session, booking: Booking) -> int | None:
    """The booking's station if its slot is at hand (no SQL in the middle of a flush)."""
    slot = booking.__dict__.get("slot")
    if slot is None and booking.slot_id is not None:
        slot = session.identity_map.get(identity_key(Slot, booking.slot_id))
    return _id_of(slot, "station") if slot is not None else None


@sa.event.listens_for(Session, "before_flush")
def _collect_flushed(session, flush_context, instances) -> None:
    if current() is None:
        return
    keys: set[str] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Booking):
            station_id = _station_of(session, obj)
            organisation_id = _id_of(obj, "organisation")
            keys.add(target_key(FeedKind.ORGANISATION, organisation_id) if organisation_id else GLOBAL)
            keys.add(target_key(FeedKind.STATION, station_id) if station_id else GLOBAL)
        elif obj in session.new:
            # New rows show in no existing feed, except a new slot in its station's public feed.
            if isinstance(obj, Slot):
                station_id = _id_of(obj, "station")
                keys.add(target_key(FeedKind.STATION, station_id) if station_id else GLOBAL)
        elif isinstance(obj, GLOBAL_CLASSES) and (obj in session.deleted or _really_changed(obj)):
            keys.add(GLOBAL)
    if keys:
        _mark(session, keys)


@sa.event.listens_for(Session, "do_orm_execute")
def _collect_statements(state) -> None:
    if not (state.is_update or state.is_delete or state.is_insert) or current() is None:
        return
    table = getattr(state.statement, "table", None)
    if table is None or getattr(table, "name", None) in GLOBAL_TABLES:
        _mark(state.session, {GLOBAL})


@sa.event.listens_for(Session, "after_commit")
def _bump_after_commit(session) -> None:
    keys = session.info.pop(_STALE, None)
    cache = current()
    if not keys or cache is None:
        return
    try:
        cache.bump(keys)
    except Exception as exc:  # noqa: BLE001 - a cache must never fail a committed change
        log.warning("feed validator cache: could not invalidate %s: %s", sorted(keys), exc)


@sa.event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session) -> None:
    session.info.pop(_STALE, None)
