"""The session's user (with their organisation) without SQL on most requests.

Every logged-in request needs its user: the header shows the name and organisation, the guards
ask the role. Loading them through the ORM costs a round trip to the database and about a
millisecond of Python, on pages whose every other part comes from the render cache. So each
process keeps the column values of the users it has served, under the versions of ``global``
(organisations, renames) and ``user:<id>`` (any column of the user's row, bumped after every
commit that writes it, see ``core/changes.py``), and attaches a fresh instance built from them
to the request's session: a persistent object, as if loaded, so lazy loads and writes work.

The values never leave the process (nothing is serialised), and a change of the row — a new
session version after a password change, a deactivation — is seen by every process at its next
request, exactly as the render cache sees changes. A copy is trusted for ``TRUST_SECONDS`` at
most: should the bump after such a change fail (the version store unreachable from the process
that made it, for a moment), a session ended there still ends everywhere within seconds.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import NamedTuple

from flask import current_app
from sqlalchemy.orm import joinedload, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from blueprints.core import changes, render_cache
from blueprints.core.extensions import db

from .models import Organisation, User

MAX_USERS = 10_000
TRUST_SECONDS = 10  # then loaded again from the database, whatever the versions say
_clock = time.monotonic


class Kept(NamedTuple):
    versions: tuple[str, ...]
    user: dict
    organisation: dict | None
    loaded_at: float = 0.0  # _clock()


class SessionUsers:
    """This process's kept users, least recently used dropped first."""

    def __init__(self, max_users: int = MAX_USERS):
        self.max_users = max_users
        self.items: OrderedDict[int, Kept] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, user_id: int) -> Kept | None:
        with self.lock:
            kept = self.items.get(user_id)
            if kept is not None:
                self.items.move_to_end(user_id)
            return kept

    def put(self, user_id: int, kept: Kept) -> None:
        with self.lock:
            self.items[user_id] = kept
            self.items.move_to_end(user_id)
            while len(self.items) > self.max_users:
                self.items.popitem(last=False)


def _kept_users() -> SessionUsers:
    return current_app.extensions.setdefault("session_users", SessionUsers())


def _columns(obj) -> dict:
    return {attr.key: getattr(obj, attr.key) for attr in obj.__mapper__.column_attrs}


def _detached(cls, values: dict):
    obj = cls.__mapper__.class_manager.new_instance()
    for key, value in values.items():
        set_committed_value(obj, key, value)
    make_transient_to_detached(obj)
    return obj


def _attached(kept: Kept) -> User:
    session = db.session()
    present = session.identity_map.get(identity_key(User, kept.user["id"]))
    if present is not None:
        return present
    user = _detached(User, kept.user)
    if kept.organisation is not None:
        organisation = session.identity_map.get(identity_key(Organisation, kept.organisation["id"]))
        if organisation is None:
            organisation = _detached(Organisation, kept.organisation)
            session.add(organisation)
        set_committed_value(user, "organisation", organisation)
    else:
        set_committed_value(user, "organisation", None)
    session.add(user)
    return user


def _loaded(user_id: int) -> User | None:
    return db.session.get(User, user_id, options=[joinedload(User.organisation)])


def _organisation_scope(kept: Kept | None) -> list[str]:
    organisation_id = kept.user.get("organisation_id") if kept is not None else None
    return [changes.organisation(organisation_id)] if organisation_id is not None else []


def session_user(user_id: int) -> User | None:
    """The user with this id, with their organisation loaded, from this process's copy when
    nothing of theirs changed since it was kept; None when there is no such user."""
    cache = render_cache.current()  # None when caching is off, or a bump is still pending
    store = changes.versions()
    if cache is None or store is None:
        return _loaded(user_id)
    kept_users = _kept_users()
    kept = kept_users.get(user_id)
    # What the page asks next comes along: the unread badge, the organisation's booking panel.
    scopes = [changes.SEQUENCE, changes.GLOBAL, changes.user(user_id), changes.inbox(user_id), changes.INBOXES,
              *_organisation_scope(kept)]
    try:  # before the SQL: never kept under versions newer than what it read
        read = dict(zip(scopes, changes.read(store, scopes)))
    except Exception:  # noqa: BLE001 - the cache is an optimisation
        return _loaded(user_id)
    sequence, versions = read[changes.SEQUENCE], (read[changes.GLOBAL], read[changes.user(user_id)])
    if kept is not None and kept.versions == versions and _clock() - kept.loaded_at < TRUST_SECONDS:
        return _attached(kept)
    user = _loaded(user_id)
    if user is not None and render_cache.snapshot_is_current(sequence):
        organisation = user.organisation
        kept_users.put(user_id, Kept(versions, _columns(user),
                                     _columns(organisation) if organisation is not None else None,
                                     _clock()))
    return user
