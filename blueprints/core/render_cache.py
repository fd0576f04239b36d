"""Rendered pages, fragments and feed documents kept under the versions they were built from.

An entry remembers the scopes it depends on (:mod:`blueprints.core.changes`), their versions
read before its SQL ran, and the first moment at which time alone changes it (a slot starting,
a booking cut-off passing). It is served only while all of those versions are current and that
moment has not come: the next view after a committed change, on any worker or instance, builds
it again. A build that discovers further scopes while it runs (the slots a menu page happens to
list) stores its entry only if nothing at all was bumped meanwhile (the ``seq`` version).

Entries live in Redis when ``REDIS_URL`` is set (shared by every instance), otherwise in each
process's memory (bounded LRU) — the versions they are checked against are shared either way.
Every key includes the code version, so a deploy starts with an empty cache. Any Redis error
means the uncached path.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable

from flask import Flask, current_app, g, has_app_context, has_request_context

from . import changes, clock

log = logging.getLogger(__name__)

MAX_AGE = timedelta(hours=1)  # bounds memory, not correctness
ROOT = Path(__file__).resolve().parents[2]


def code_version() -> str:
    """A digest of the code and templates that build what is cached (computed once per process)."""
    digest = hashlib.sha256()
    for folder in ("blueprints", "templates", "translations"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in {".py", ".html", ".mo", ".txt"} and path.is_file():
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@dataclass
class Entry:
    deps: tuple[str, ...]
    versions: tuple[str, ...]
    expires: float  # POSIX seconds: time alone changes what was built
    body: bytes
    meta: dict = field(default_factory=dict)

    def encode(self) -> bytes:
        header = {"d": self.deps, "v": self.versions, "e": self.expires, "m": self.meta}
        return json.dumps(header, separators=(",", ":")).encode() + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> "Entry":
        header, _, body = raw.partition(b"\n")
        data = json.loads(header)
        return cls(tuple(data["d"]), tuple(data["v"]), data["e"], body, data["m"])


class _OneStore:
    """An entry store that is a single place (not a local copy in front of a shared one)."""

    def candidates(self, key: str):
        entry = self.get(key)
        return [entry] if entry is not None else []


class MemoryEntries(_OneStore):
    def __init__(self, max_entries: int = 4000, max_bytes: int = 64 << 20):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.items: OrderedDict[str, Entry] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def get(self, key: str) -> Entry | None:
        with self.lock:
            entry = self.items.get(key)
            if entry is not None:
                self.items.move_to_end(key)
            return entry

    def put(self, key: str, entry: Entry, ttl: int) -> None:
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.size -= len(old.body)
            self.items[key] = entry
            self.size += len(entry.body)
            while self.items and (len(self.items) > self.max_entries or self.size > self.max_bytes):
                _, dropped = self.items.popitem(last=False)
                self.size -= len(dropped.body)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.size = 0

    def get_many(self, keys: list[str]) -> dict[str, Entry]:
        return {key: entry for key in keys if (entry := self.get(key)) is not None}


class RedisEntries(_OneStore):
    PREFIX = "partyday:rc:"

    def __init__(self, client):
        self.client = client

    def get(self, key: str) -> Entry | None:
        raw = self.client.get(self.PREFIX + key)
        return Entry.decode(raw) if raw is not None else None

    def put(self, key: str, entry: Entry, ttl: int) -> None:
        self.client.set(self.PREFIX + key, entry.encode(), ex=max(ttl, 1))

    def get_many(self, keys: list[str]) -> dict[str, Entry]:
        if not keys:
            return {}
        raws = self.client.mget([self.PREFIX + key for key in keys])
        return {key: Entry.decode(raw) for key, raw in zip(keys, raws) if raw is not None}

    def clear(self) -> None:
        for name in self.client.scan_iter(match=self.PREFIX + "*", count=1000):
            self.client.delete(name)


class TieredEntries:
    """This process's copies in front of the shared store: a hit needs only the versions from
    Redis (one round trip), not the body. A copy that is out of date is looked up again in the
    shared store, where another instance may already have put a current one."""

    def __init__(self, local: MemoryEntries, shared: RedisEntries):
        self.local, self.shared = local, shared

    def candidates(self, key: str):
        entry = self.local.get(key)
        if entry is not None:
            yield entry
        shared = self.shared.get(key)
        if shared is not None:
            self.local.put(key, shared, 0)
            yield shared

    def put(self, key: str, entry: Entry, ttl: int) -> None:
        self.local.put(key, entry, ttl)
        self.shared.put(key, entry, ttl)

    def get_many(self, keys: list[str]) -> dict[str, Entry]:
        found = {key: entry for key in keys if (entry := self.local.get(key)) is not None}
        shared = self.shared.get_many([key for key in keys if key not in found])
        for key, entry in shared.items():
            self.local.put(key, entry, 0)
        return {**found, **shared}

    def clear(self) -> None:
        self.local.clear()
        self.shared.clear()


class Build:
    """What one build learnt: its scopes with their versions, its expiry.

    Versions are read before the build's SQL: its own scopes and the ones it is predicted to
    find (those of the entry it replaces, e.g. the slots a menu page listed before a booking).
    A scope found while building that was not read before is read afterwards, and then the
    entry is kept only if nothing at all was bumped meanwhile (the ``seq`` version).
    """

    def __init__(self, store, deps: Iterable[str], predicted: Iterable[str] = ()):
        self.store = store
        self.deps = list(dict.fromkeys([changes.GLOBAL, *deps]))
        ahead = list(dict.fromkeys([*self.deps, *predicted]))
        versions = changes.read(store, [changes.SEQUENCE, *ahead])
        self.sequence = versions.pop(0)
        self.known = dict(zip(ahead, versions))
        self.later: list[str] = []
        self.expires = (clock.now() + MAX_AGE).timestamp()
        # SQLite keeps one snapshot per transaction, taken at its first SELECT: on a request that
        # read something before this build (the logged-in user), the build may see data older
        # than these versions unless nothing was bumped since the request began.
        self.safe = snapshot_is_current(self.sequence)

    def child(self, deps: Iterable[str]) -> "Build":
        """A piece built from data this build has already read (a menu card from the menu's
        query): what this build knew before its SQL counts for the piece too."""
        piece = Build.__new__(Build)
        piece.store, piece.sequence, piece.known = self.store, self.sequence, self.known
        piece.deps, piece.later = [changes.GLOBAL], []
        piece.expires = (clock.now() + MAX_AGE).timestamp()
        piece.safe = self.safe
        piece.depend_on(*deps)
        return piece

    def read_more(self, *scopes: str) -> None:
        """Scopes whose identity the build learnt from data that its first scopes cover (which
        feed a token opens): read now, before the SQL they cover."""
        new = [s for s in scopes if s not in self.known]
        if new:
            try:
                self.known.update(zip(new, changes.read(self.store, new)))
            except Exception as exc:  # noqa: BLE001 - built all the same, just not kept
                log.warning("render cache unavailable: %s", exc)
                self.safe = False
                self.known.update((s, None) for s in new)
        self.deps += [s for s in scopes if s not in self.deps]

    def depend_on(self, *scopes: str) -> None:
        """Scopes found while building."""
        for scope in scopes:
            if scope in self.known:
                if scope not in self.deps:
                    self.deps.append(scope)
            elif scope not in self.later:
                self.later.append(scope)

    def changes_at(self, *moments: datetime | None) -> None:
        """The build shows something that changes by itself at these moments."""
        now = clock.now()
        for moment in moments:
            if moment is None:
                continue
            if moment > now:
                self.expires = min(self.expires, moment.timestamp())
            elif now - moment < timedelta(seconds=1):
                # Just passed (a query comparing with >= may still show it): keep it a second only.
                self.expires = min(self.expires, now.timestamp() + 1)

    def entry(self, body: bytes, meta: dict) -> Entry | None:
        if not self.safe:
            return None
        deps = list(self.deps)
        versions = [self.known[scope] for scope in deps]
        if self.later:
            current = changes.read(self.store, [changes.SEQUENCE, *self.later])
            if current.pop(0) != self.sequence:
                return None  # something was written while we built: these versions may be too new
            deps += self.later
            versions += current
        return Entry(tuple(deps), tuple(versions), self.expires, body, meta)


class RenderCache:
    def __init__(self, store, entries, version: str):
        self.store, self.entries, self.version = store, entries, version

    def key(self, *parts) -> str:
        text = json.dumps([self.version, *parts], default=str, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def fresh(self, key: str) -> Entry | None:
        return self.lookup(key)[0]

    def lookup(self, key: str) -> tuple[Entry | None, tuple[str, ...]]:
        """(the current entry or None, the scopes of the last entry seen: a prediction)."""
        candidates = self.entries.candidates(key)
        now = clock.now().timestamp()
        predicted: tuple[str, ...] = ()
        for entry in candidates:
            predicted = entry.deps
            if entry.expires > now and tuple(self._versions(entry.deps)) == entry.versions:
                return entry, predicted
        return None, predicted

    def _versions(self, scopes) -> list[str]:
        """Versions for a lookup: what this request has read of them already (a page's blocks,
        then its booking panel, ask for the slot's), the rest in one round trip."""
        scopes = list(scopes)
        known = changes.remembered(scopes)
        return known if known is not None else changes.read(self.store, scopes)

    def fresh_many(self, keys: list[str]) -> dict[str, Entry]:
        """The current entries among ``keys``, with one read of all their versions."""
        now = clock.now().timestamp()
        entries = {k: e for k, e in self.entries.get_many(keys).items() if e.expires > now}
        scopes = list(dict.fromkeys(scope for entry in entries.values() for scope in entry.deps))
        if not scopes:
            return {}
        versions = dict(zip(scopes, self._versions(scopes)))
        return {key: entry for key, entry in entries.items()
                if tuple(versions[scope] for scope in entry.deps) == entry.versions}

    def keep(self, key: str, entry: Entry | None) -> None:
        if entry is None:
            return
        ttl = int(entry.expires - clock.now().timestamp()) + 1
        if ttl > 0:
            self.entries.put(key, entry, ttl)


_SEQUENCE_AT_START = "render_cache_sequence_at_start"


def snapshot_is_current(sequence: str) -> bool:
    """Whether data read from now on in this request is as new as ``sequence`` (the ``seq``
    version read just now): always on PostgreSQL; on SQLite only if nothing was bumped since
    the request began, since its transaction may have fixed an older snapshot already."""
    started = g.get(_SEQUENCE_AT_START) if has_request_context() else None
    return started is None or started == sequence


def install(app: Flask) -> None:
    if not app.config.get("RENDER_CACHE", True):
        return

    def before_any_sql():
        """Retry bumps that failed; on SQLite, note the write sequence before the request's first
        SELECT fixes its snapshot (see ``Build``). First of the request's hooks: one that answers
        early (a refused CSRF token) may still render a page with the user and their badge."""
        if not changes.retry_failed_bumps(app):
            return
        if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            sequence = _safely(lambda: app.extensions["change_versions"].read([changes.SEQUENCE]))
            g.setdefault(_SEQUENCE_AT_START, sequence[0] if sequence else "unknown")

    app.before_request_funcs.setdefault(None, []).insert(0, before_any_sql)

    store = app.extensions["change_versions"]
    if app.config.get("REDIS_URL"):
        from .shared_state import redis_client

        entries = TieredEntries(MemoryEntries(), RedisEntries(redis_client(app)))
    else:
        entries = MemoryEntries()
    app.extensions["render_cache"] = RenderCache(store, entries, code_version())


def current() -> RenderCache | None:
    if not has_app_context():
        return None
    return for_app(current_app)


def for_app(app) -> RenderCache | None:
    """The app's render cache, or None while a bump after a commit is still pending (Redis was
    down): until it goes through, this process trusts no entry."""
    if changes.failed_bumps(app):
        return None
    return app.extensions.get("render_cache")


def clear_entries() -> None:
    cache = current()
    if cache is not None:
        cache.entries.clear()


def cached_many(items: list[tuple[tuple, Iterable[str], Callable]], parent: Build | None,
                before_building: Callable[[list[int]], None] | None = None) -> list[tuple[bytes, dict]]:
    """:func:`cached` for many pieces of one page (the menu's cards) built from data that the
    ``parent`` build has already read: one lookup of all entries and their versions; only the
    pieces whose entry is not current are built, and kept only if nothing changed since
    ``parent`` began (their versions are read after its SQL). ``before_building(indexes)`` is
    told once which items will be built (to load their data in one go)."""
    cache = current()
    if cache is None or parent is None:
        if before_building is not None:
            before_building(list(range(len(items))))
        return [build(None) for _, _, build in items]
    keys = [cache.key(*parts) for parts, _, _ in items]
    found = _safely(lambda: cache.fresh_many(keys), default={})
    missing = [index for index, key in enumerate(keys) if key not in found]
    if missing and before_building is not None:
        before_building(missing)
    results = []
    for key, (_, deps, build) in zip(keys, items):
        entry = found.get(key)
        if entry is not None:
            results.append((entry.body, entry.meta))
            continue
        recording = parent.child(deps)
        body, meta = build(recording)
        _safely(lambda: cache.keep(key, recording.entry(body, meta)))
        results.append((body, meta))
    return results


def _safely(action, default=None):
    try:
        return action()
    except Exception as exc:  # noqa: BLE001 - the cache is an optimisation
        log.warning("render cache unavailable: %s", exc)
        return default


def cached(parts: tuple | None, deps: Iterable[str],
           build: Callable[[Build | None], tuple[bytes, dict]]) -> tuple[bytes, dict]:
    """``build(b)`` returns (body, meta); it is called only when no current entry exists.

    ``b`` records further scopes and expiry (``None`` when the cache is off or unavailable).
    ``parts`` None: not worth keeping (a long-tail request), always built.
    """
    cache = current()
    if cache is None or parts is None:
        return build(None)
    key = cache.key(*parts)
    entry, predicted = _safely(lambda: cache.lookup(key), default=(None, ()))
    if entry is not None:
        return entry.body, entry.meta
    recording = _safely(lambda: Build(cache.store, deps, predicted))
    body, meta = build(recording)
    if recording is not None and meta.get("status", 200) < 400:  # refusals are a long tail: not kept
        _safely(lambda: cache.keep(key, recording.entry(body, meta)))
    return body, meta
