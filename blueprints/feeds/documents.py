"""A feed's document with its validators, built once per change and kept in the render cache.

Calendar apps re-fetch every feed about once an hour. While nothing the feed shows has changed
(its organisation's or station's version, the global one) and no event has started or left its
window, both the 304 and an unconditional fetch are answered from the cache with no SQL and no
icalendar work. After a change the document is built again — reusing each unchanged event's
serialisation — and its ETag is the digest of its bytes, so a conditional request gets 304
exactly when the bytes are the same.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from blueprints.core import changes, render_cache

from . import services
from .models import FeedKind


@dataclass(frozen=True)
class Document:
    body: bytes
    etag: str
    last_modified: datetime


def target_scope(feed: services.Feed) -> str:
    """Organisation feeds follow their organisation; host and public feeds their station."""
    if feed.kind is FeedKind.ORGANISATION:
        return changes.organisation(feed.target_id)
    return changes.station(feed.target_id)


def cache_parts(token: str, base_url: str) -> tuple:
    """What names a feed's entry in the render cache (the route and feeds/revalidation.py)."""
    return ("feed", token, base_url)


def from_meta(body: bytes, meta: dict) -> Document | None:
    if not meta.get("found"):
        return None
    return Document(body, meta["etag"], datetime.fromtimestamp(meta["last_modified"], services.clock.LOCAL_TZ))


def document(token: str, base_url: str, build_body) -> Document | None:
    """The feed ``token`` opens (None for an unknown or revoked token); ``build_body(feed)`` makes
    its bytes on a miss."""

    def build(recording):
        feed = services.resolve(token)  # which feed a token opens is covered by the global version
        if feed is None:
            return b"", {"found": False}
        if recording is not None:
            recording.read_more(target_scope(feed))  # before the SQL of the feed's rows
        fresh = services.freshness(feed)
        body = build_body(feed)
        if recording is not None:
            recording.changes_at(fresh.changes_at)
        return body, {"found": True, "etag": services.etag_of(body),
                      "last_modified": fresh.last_modified.timestamp()}

    body, meta = render_cache.cached(cache_parts(token, base_url), [], build)
    return from_meta(body, meta)
