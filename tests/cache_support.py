"""Run a test with each kind of cache the app can have: none, per-process entries checked against
the versions file (the SQLite default), and Redis (the machine's when TEST_REDIS_URL is set, an
in-memory fake otherwise)."""
from __future__ import annotations

import os

import fakeredis
import redis

from blueprints.core import changes, render_cache

MODES = ["uncached", "file", "redis"]


def fresh_redis():
    url = os.environ.get("TEST_REDIS_URL")
    client = redis.Redis.from_url(url) if url else fakeredis.FakeRedis()
    for prefix in (changes.RedisVersions.PREFIX, render_cache.RedisEntries.PREFIX):
        stale = client.keys(prefix + "*")
        if stale:
            client.delete(*stale)
    return client


def use_cache(app, monkeypatch, mode: str, client=None):
    """Switch the session's app to ``mode`` for one test (monkeypatch undoes it)."""
    if mode == "uncached":
        monkeypatch.delitem(app.extensions, "render_cache", raising=False)
        return None
    if mode == "redis":
        client = client or fresh_redis()
        store = changes.RedisVersions(client)
        entries = render_cache.TieredEntries(render_cache.MemoryEntries(), render_cache.RedisEntries(client))
    else:
        store = app.extensions["change_versions"]
        entries = render_cache.MemoryEntries()
    monkeypatch.setitem(app.extensions, "change_versions", store)
    monkeypatch.setitem(app.extensions, "render_cache",
                        render_cache.RenderCache(store, entries, render_cache.code_version()))
    return client
