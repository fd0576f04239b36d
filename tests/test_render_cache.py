"""The rule that makes the render cache safe, on its own: an entry is only ever stored under
versions read before the data it shows (or guarded by the write sequence), so no change can
hide behind it."""
from __future__ import annotations

from blueprints.core import changes
from blueprints.core.render_cache import Build, Entry, MemoryEntries, RenderCache


def _store(tmp_path):
    return changes.FileVersions(tmp_path / "versions.bin")


def test_scopes_read_before_the_sql_make_an_entry_even_if_other_scopes_change_meanwhile(tmp_path):
    store = _store(tmp_path)
    build = Build(store, ["slot:1"])
    store.bump({"slot:2"})  # another slot's booking while we build
    entry = build.entry(b"page", {})
    assert entry is not None and entry.deps == ("global", "slot:1")
    assert entry.versions == tuple(store.read(["global", "slot:1"]))


def test_a_scope_found_while_building_is_kept_only_if_nothing_was_bumped(tmp_path):
    store = _store(tmp_path)
    quiet = Build(store, [])
    quiet.depend_on("slot:7")
    assert quiet.entry(b"page", {}) is not None

    busy = Build(store, [])
    busy.depend_on("slot:7")
    store.bump({"slot:8"})  # any commit between the SQL and the version read
    assert busy.entry(b"page", {}) is None


def test_predicted_scopes_are_read_before_the_sql_so_a_rush_elsewhere_does_not_stop_storing(tmp_path):
    store = _store(tmp_path)
    build = Build(store, [], predicted=["slot:7"])
    store.bump({"slot:8"})
    build.depend_on("slot:7")
    entry = build.entry(b"page", {})
    assert entry is not None
    store.bump({"slot:7"})  # a booking of the slot it shows: the entry is out of date at once
    assert tuple(store.read(list(entry.deps))) != entry.versions


def test_a_piece_built_from_the_parents_data_uses_what_the_parent_read_before_its_sql(tmp_path):
    store = _store(tmp_path)
    parent = Build(store, [], predicted=["slot:1"])
    store.bump({"slot:1"})  # the booking commits after the parent read its versions
    card = parent.child(["slot:1"])
    entry = card.entry(b"card", {})
    assert entry is not None
    assert tuple(store.read(list(entry.deps))) != entry.versions  # stale at once: built again next time

    unpredicted = parent.child(["slot:2"])
    store.bump({"slot:3"})
    assert unpredicted.entry(b"card", {}) is None


def test_lookup_gives_the_scopes_of_an_outdated_entry_as_prediction(app, tmp_path):
    store = _store(tmp_path)
    cache = RenderCache(store, MemoryEntries(), "v")
    build = Build(store, ["slot:4"])
    cache.keep("k", build.entry(b"x", {}))
    assert cache.lookup("k")[0] is not None
    store.bump({"slot:4"})  # by another process
    with app.app_context(), app.test_request_context():  # this process's next request
        entry, predicted = cache.lookup("k")
    assert entry is None and predicted == ("global", "slot:4")


def test_a_request_reads_each_version_once_and_forgets_them_at_its_own_bump(app, tmp_path, monkeypatch):
    """Versions read once per request (its snapshot: the user's, then the page's, then the booking
    panel's lookups share one round trip); a bump by the request itself forgets them."""
    from blueprints.core import changes

    store = _store(tmp_path)
    monkeypatch.setitem(app.extensions, "change_versions", store)
    cache = RenderCache(store, MemoryEntries(), "v")
    with app.app_context(), app.test_request_context():
        cache.keep("k", Build(store, ["slot:4"]).entry(b"x", {}))
    reads = []
    original = store.read
    monkeypatch.setattr(store, "read", lambda keys: reads.append(list(keys)) or original(keys))
    with app.app_context(), app.test_request_context():
        assert cache.lookup("k")[0] is not None
        assert cache.lookup("k")[0] is not None
        assert len(reads) == 1  # one round trip for both lookups
        original.__self__.bump({"slot:4"})  # another process: this request keeps its snapshot
        assert cache.lookup("k")[0] is not None
        changes.bump({"slot:4"})  # this request's own change
        assert cache.lookup("k")[0] is None


def test_entries_round_trip_through_bytes():
    entry = Entry(("global", "slot:1"), ("a.1", "a.2"), 12.5, b"<p>\\n\xe5\x85\x9a</p>\n", {"status": 422})
    assert Entry.decode(entry.encode()) == entry


def test_on_sqlite_a_bump_since_the_request_began_keeps_nothing(app, tmp_path):
    """SQLite fixes a transaction's snapshot at its first SELECT (the logged-in user, before any
    build): a bump between the request's start and a build's version read means the build may
    see data older than its versions, so it is built but not kept."""
    from flask import g

    from blueprints.core import render_cache

    store = _store(tmp_path)
    with app.test_request_context("/"):
        setattr(g, render_cache._SEQUENCE_AT_START, store.read([changes.SEQUENCE])[0])
        store.bump({"slot:9"})  # a booking elsewhere commits after the request's first SELECT
        assert Build(store, ["slot:1"]).entry(b"page", {}) is None
    with app.test_request_context("/"):
        setattr(g, render_cache._SEQUENCE_AT_START, store.read([changes.SEQUENCE])[0])
        assert Build(store, ["slot:1"]).entry(b"page", {}) is not None


def test_the_request_start_is_noted_before_any_other_hook_can_answer(app):
    """A hook that answers early (Flask-WTF refusing a CSRF token) may still render a page with
    the user and their unread badge: the SQLite snapshot guard must have run by then."""
    first = app.before_request_funcs[None][0]
    assert first.__name__ == "before_any_sql" and first.__module__ == "blueprints.core.render_cache"
