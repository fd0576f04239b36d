"""What changed: version counters that every cache of the app validates against.

After each commit the session hooks below know which rows the transaction wrote and bump the
version of every *scope* those rows show in:

* ``slot:<id>``, ``package:<id>``, ``station:<id>``, ``org:<id>`` — a booking bumps its slot,
  the slot's package and station, and its organisation; a slot bumps itself, its package and its
  station;
* ``slots`` — any slot written (which slots a menu lists), ``places`` — any booking written
  (which slots still have places);
* ``user:<id>`` — any column of a user's row (sessions, passwords included): the session's user
  that each process keeps (``accounts/session_users.py``);
* ``global`` — rare catalogue-wide edits (stations, packages, campaigns, organisations, the users
  and tokens that open feeds, bulk statements) and ``flask cache clear``; every reader depends on it.

Readers read the versions of their scopes *before* their SQL and store what they built under
those versions; writers bump *after* the commit. So nothing is ever stored under versions newer
than the data it saw: at worst a render is thrown away once too often.

Versions are shared by every worker and instance: in Redis when ``REDIS_URL`` is set, otherwise
in a small memory-mapped file under ``instance/`` locked with ``flock`` (several workers of one
machine, the embedded SQLite default). Writes from outside the app (``flask demo load`` in
another process, psql, migrations) are covered by ``flask cache clear``.
"""
from __future__ import annotations

import fcntl
import logging
import mmap
import os
import secrets
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Callable, Iterable

import click
import sqlalchemy as sa
from flask import Flask, current_app, g, has_app_context, has_request_context
from flask.cli import with_appcontext
from sqlalchemy.orm import ONETOMANY, RelationshipProperty, Session

log = logging.getLogger(__name__)

GLOBAL = "global"
SLOTS = "slots"
PLACES = "places"
SEQUENCE = "seq"  # bumped with every other bump: "did anything change since?"
_PENDING = "changes_pending"  # session.info: scopes to bump after the commit


def slot(slot_id) -> str:
    return f"slot:{slot_id}"


def package(package_id) -> str:
    return f"package:{package_id}"


def station(station_id) -> str:
    return f"station:{station_id}"


def organisation(organisation_id) -> str:
    return f"org:{organisation_id}"


def inbox(user_id) -> str:
    """A user's notifications (the unread badge); ``INBOXES`` covers bulk changes of anyone's."""
    return f"inbox:{user_id}"


INBOXES = "inboxes"


def user(user_id) -> str:
    """Any column of a user's row (the session's user is kept per process under it)."""
    return f"user:{user_id}"


# -- the two version stores -----------------------------------------------------------------------

class RedisVersions:
    """Versions as opaque unique tokens in Redis. A bump writes a fresh token, never a count, so a
    key lost to eviction or a restart can never come back equal to a version someone stored."""

    PREFIX = "partyday:ver:"

    def __init__(self, client):
        self.client = client

    @staticmethod
    def _fresh() -> str:
        return f"{time.time_ns():x}.{secrets.token_hex(4)}"

    def read(self, keys: list[str]) -> list[str]:
        names = [self.PREFIX + k for k in keys]
        values = self.client.mget(names)
        missing = [n for n, v in zip(names, values) if v is None]
        if missing:  # first reader of a scope gives it a version, so that its absence means "unknown"
            pipe = self.client.pipeline(transaction=False)
            for name in missing:
                pipe.set(name, self._fresh(), nx=True)
            pipe.execute()
            values = self.client.mget(names)
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    def bump(self, keys: Iterable[str]) -> None:
        pipe = self.client.pipeline(transaction=True)  # MULTI/EXEC: readers see all or none
        for key in sorted(set(keys) | {SEQUENCE}):
            pipe.set(self.PREFIX + key, self._fresh())
        pipe.execute()


class FileVersions:
    """Counters in a memory-mapped file shared by the processes of one machine.

    Scopes are hashed onto a fixed table of counters: two scopes sharing a counter only ever
    invalidate each other once too often. The file's random epoch is part of every version, so a
    recreated file never matches versions read from the old one.
    """

    COUNTERS = 1 << 17  # 1 MiB
    _SEQUENCE, _EPOCH = 0, 1

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()  # flock does not exclude threads sharing one descriptor
        self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_size < self.COUNTERS * 8:
                os.ftruncate(fd, self.COUNTERS * 8)
            self.map = mmap.mmap(fd, self.COUNTERS * 8)
            if struct.unpack_from("<Q", self.map, self._EPOCH * 8)[0] == 0:
                struct.pack_into("<Q", self.map, self._EPOCH * 8, secrets.randbits(63) | 1)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self.fd = fd
        self.inode = os.fstat(fd).st_ino

    def _reopen_if_replaced(self) -> None:
        try:
            replaced = os.stat(self.path).st_ino != self.inode
        except FileNotFoundError:
            replaced = True
        if replaced:
            self.map.close()
            os.close(self.fd)
            self._open()

    def _index(self, key: str) -> int:
        return 2 + zlib.crc32(key.encode()) % (self.COUNTERS - 2)

    def read(self, keys: list[str]) -> list[str]:
        with self._lock:
            self._reopen_if_replaced()
            fcntl.flock(self.fd, fcntl.LOCK_SH)
            try:
                epoch = struct.unpack_from("<Q", self.map, self._EPOCH * 8)[0]
                values = [struct.unpack_from("<Q", self.map, self._slot(key) * 8)[0] for key in keys]
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        return [f"{epoch:x}.{value}" for value in values]

    def _slot(self, key: str) -> int:
        return self._SEQUENCE if key == SEQUENCE else self._index(key)

    def bump(self, keys: Iterable[str]) -> None:
        slots = sorted({self._slot(k) for k in keys} | {self._SEQUENCE})
        with self._lock:
            self._reopen_if_replaced()
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                for index in slots:
                    value = struct.unpack_from("<Q", self.map, index * 8)[0]
                    struct.pack_into("<Q", self.map, index * 8, value + 1)
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)


def install(app: Flask) -> None:
    """The app's version store: Redis when configured, else the file under instance/."""
    if app.config.get("REDIS_URL"):
        from .shared_state import redis_client

        store = RedisVersions(redis_client(app))
    else:
        path = app.config.get("CACHE_VERSIONS_FILE") or Path(app.instance_path) / "cache-versions.bin"
        store = FileVersions(path)
    app.extensions["change_versions"] = store
    app.cli.add_command(cache_cli)


def versions():
    """The current app's version store, or None outside an app."""
    if not has_app_context():
        return None
    return current_app.extensions.get("change_versions")


_REMEMBERED = "change_versions_read"


def read(store, keys: list[str]) -> list[str]:
    """The current versions of ``keys``, remembered for this request: a later lookup of the
    same scopes (a page's booking panel after its blocks, the unread badge after the user)
    needs no round trip, and a lookup inside a build sees the versions that build read."""
    keys = list(keys)
    values = store.read(keys)
    if has_request_context():
        g.setdefault(_REMEMBERED, {}).update(zip(keys, values))
    return values


def remembered(keys: Iterable[str]) -> list[str] | None:
    """The versions of all ``keys`` as this request read them, or None if one is not known."""
    known = g.get(_REMEMBERED) if has_request_context() else None
    if not known:
        return None
    try:
        return [known[key] for key in keys]
    except KeyError:
        return None


def bump(keys: Iterable[str]) -> None:
    """Bump scopes now (after a commit made outside the ORM session, or by hand)."""
    store = versions()
    keys = set(keys)
    if store is None or not keys:
        return
    if has_request_context():
        g.pop(_REMEMBERED, None)  # what this request read before its own change is out of date
    try:
        store.bump(keys)
    except Exception as exc:  # noqa: BLE001 - a cache must never fail a committed change
        # Remembered: until the bump goes through, this process trusts no entry (every other
        # process is without Redis too, or sees it back — see retry_failed_bumps).
        failed_bumps(current_app).update(keys | {GLOBAL})
        log.warning("could not bump cache versions %s: %s", sorted(keys)[:10], exc)


def failed_bumps(app) -> set[str]:
    """Scopes whose bump after a commit failed (Redis down), to be bumped when it is back."""
    return app.extensions.setdefault("change_failed_bumps", set())


def retry_failed_bumps(app) -> bool:
    """Bump what could not be bumped; True when nothing is left pending."""
    pending = failed_bumps(app)
    if not pending:
        return True
    try:
        app.extensions["change_versions"].bump(set(pending))
    except Exception:  # noqa: BLE001 - still down: try again on the next request
        return False
    pending.clear()
    return True


@click.group("cache", help="The render cache and feed validators.")
def cache_cli():
    pass


@cache_cli.command("clear")
@with_appcontext
def clear_command():
    """Invalidate every cached page, fragment and feed (after writes from outside the app)."""
    bump({GLOBAL})
    from . import render_cache

    render_cache.clear_entries()
    click.echo("cache cleared")


# -- which scopes a transaction's writes touch ---------------------------------------------------
#
# The features' models say what their rows show in (``blueprints/tracking.py`` registers it):
# core knows no feature.

ScopesOf = Callable[["Scopes", Session, object, bool, bool], None]
_SCOPES_OF: dict[type, ScopesOf] = {}
_NEW_ID_SCOPES: dict[type, Callable[[int], str]] = {}
_TABLE_SCOPES: dict[str, str] = {}


def track(model: type, scopes_of: ScopesOf, *, new_id_scope: Callable[[int], str] | None = None) -> None:
    """``scopes_of(found, session, obj, new, deleted)`` adds to ``found`` the scopes a flushed
    ``model`` row touches; ``new_id_scope(id)``: bumped for a new row once it has its id."""
    _SCOPES_OF[model] = scopes_of
    if new_id_scope is not None:
        _NEW_ID_SCOPES[model] = new_id_scope


def track_tables(scope: str, *names: str) -> None:
    """A bulk UPDATE, DELETE or INSERT on these tables bumps ``scope``."""
    for name in names:
        _TABLE_SCOPES[name] = scope


def related_id(obj, relationship: str) -> int | None:
    """A many-to-one's id before the flush has copied it into the foreign key column."""
    related = obj.__dict__.get(relationship)
    return related.id if related is not None else getattr(obj, f"{relationship}_id", None)


def old_and_new(obj, column: str) -> set:
    history = sa.inspect(obj).attrs[column].history
    return {v for v in (*history.deleted, *history.added, *history.unchanged) if v is not None}


def really_changed(obj, watched: frozenset | None = None) -> bool:
    """A column or a many-to-many link changed, not just a back-populated list of children."""
    state = sa.inspect(obj)
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


def _registered(registry: dict, obj):
    for cls in type(obj).__mro__:
        if cls in registry:
            return registry[cls]
    return None


def _mark(session: Session, keys: set[str]) -> None:
    session.info.setdefault(_PENDING, set()).update(keys)


class Scopes:
    """The scopes of one flush, and the ids whose scopes need a query to find (run once per
    flush, whatever the number of rows: ``later``)."""

    def __init__(self):
        self.keys: set[str] = set()
        self._later: dict[Callable[[Session, set], Iterable[str]], set] = {}

    def later(self, find: Callable[[Session, set], Iterable[str]], ids: Iterable) -> None:
        """``find(session, ids)`` returns the scopes of these ids, after every row is seen."""
        self._later.setdefault(find, set()).update(ids)

    def resolve(self, session: Session) -> set[str]:
        with session.no_autoflush:
            for find, ids in self._later.items():
                if ids:
                    self.keys |= set(find(session, ids))
        return self.keys


@sa.event.listens_for(Session, "before_flush")
def _collect_flushed(session, flush_context, instances) -> None:
    if versions() is None:
        return
    found = Scopes()
    for objects, new, deleted in ((session.new, True, False), (session.dirty, False, False),
                                  (session.deleted, False, True)):
        for obj in objects:
            scopes_of = _registered(_SCOPES_OF, obj)
            if scopes_of is not None:
                scopes_of(found, session, obj, new, deleted)
    keys = found.resolve(session)
    if keys:
        _mark(session, keys)


@sa.event.listens_for(Session, "after_flush")
def _collect_new_ids(session, flush_context) -> None:
    """New rows have their ids only now (SQLite may give a new user the id of a deleted one,
    whose kept copy must not come back)."""
    if versions() is None:
        return
    ids = set()
    for obj in session.new:
        scope = _registered(_NEW_ID_SCOPES, obj)
        if scope is not None and obj.id is not None:
            ids.add(scope(obj.id))
    if ids:
        _mark(session, ids)


@sa.event.listens_for(Session, "do_orm_execute")
def _collect_statements(state) -> None:
    if not (state.is_update or state.is_delete or state.is_insert) or versions() is None:
        return
    table = getattr(state.statement, "table", None)
    if table is None:
        _mark(state.session, {GLOBAL})
        return
    scope = _TABLE_SCOPES.get(getattr(table, "name", None))
    if scope is not None:
        _mark(state.session, {scope})


@sa.event.listens_for(Session, "after_commit")
def _bump_after_commit(session) -> None:
    keys = session.info.pop(_PENDING, None)
    if keys:
        bump(keys)


@sa.event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session) -> None:
    session.info.pop(_PENDING, None)
