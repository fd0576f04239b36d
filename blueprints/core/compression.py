"""gzip for pages, htmx fragments, calendar feeds, CSS/JS, JSON and CSV (Flask-Compress).

Only gzip: every browser and calendar app reads it. Flask-Compress installs brotli and zstd too
(binary wheels), but at cheap levels they save at most 600 bytes of the 42 KB menu page (zstd 3:
5,503 bytes in 67 µs; brotli 1: 5,989 in 50 µs), not worth a second and third representation of
every URL. Level 1 by default (``COMPRESS_LEVEL``), as nginx: the demo menu page (42,225 bytes)
becomes 6,074 bytes in 134 µs; level 4 gives 5,512 bytes in 212 µs, level 6 5,004 bytes in
314 µs — each step buys about 1 % of the page for +50 % CPU (the page takes ~15 ms to build).

Not compressed: answers under ``COMPRESS_MIN_SIZE`` (500 bytes), other types (XLSX is already a
zip, images, plain text), anything but 2xx (a 304 has no body), and the pages that show a secret
feed address (:data:`NEVER_COMPRESSED`): they also echo the query string (the language form's
``next``), the pattern BREACH needs to read a secret from compressed lengths.

Validators stay per representation (RFC 9110 §8.8.3): the gzip answer's strong ETag is the plain
one with ``:gzip`` appended inside the quotes (``"abc"`` → ``"abc:gzip"``); weak ETags are left
alone. A route that answers If-None-Match itself, before compression, compares with
:func:`matches_etag`, which accepts both forms; a 304 then carries the form the client sent.
"""
from __future__ import annotations

import os

from flask import Flask, current_app, request
from flask_compress import Compress

DEFAULT_LEVEL = 1
ALGORITHMS = ("gzip",)
SETTINGS = {
    "COMPRESS_MIMETYPES": ["text/html", "text/calendar", "text/css", "text/javascript",
                           "application/javascript", "application/json", "text/csv"],
    "COMPRESS_MIN_SIZE": 500,
    "COMPRESS_ALGORITHM": list(ALGORITHMS),
    # Static files are streamed (send_file); the library's streaming default has no gzip.
    "COMPRESS_ALGORITHM_STREAMING": list(ALGORITHMS),
    "COMPRESS_STREAMS": True,
    "COMPRESS_REGISTER": False,  # our own after_request calls it (exclusions, order, 304s)
}
# Endpoints whose pages show a feed's secret address.
NEVER_COMPRESSED = frozenset({"feeds.calendar", "feeds.reset"})


def init_app(app: Flask) -> None:
    """Call before anything else registers an after_request: they run in reverse order of
    registration, so this one runs after them and compresses the final body and ETag."""
    app.config.setdefault("COMPRESS_LEVEL", int(os.environ.get("COMPRESS_LEVEL") or DEFAULT_LEVEL))
    for key, value in SETTINGS.items():
        app.config.setdefault(key, value)
    # One Compress per app: init_app() keeps the app's settings on the instance.
    app.extensions["compress"] = Compress(app)
    app.after_request(_compress)


def not_modified_headers(response, req):
    """What this module adds to a 304 (also for one answered before Flask, feeds/revalidation.py)."""
    response.vary.add("Accept-Encoding")  # on every answer, 304s included (RFC 9110 §15.4.5)
    return _echo_sent_etag(response, req)


def _compress(response):
    if response.status_code == 304:
        return not_modified_headers(response, request)
    response.vary.add("Accept-Encoding")
    if request.endpoint in NEVER_COMPRESSED or not _accepted_codings():
        # Not asking Flask-Compress: it would use gzip for "Accept-Encoding: gzip;q=0" (q=0 is "no").
        return response
    had_date, body = "Date" in response.headers, response.response
    response = current_app.extensions["compress"].after_request(response)
    if not had_date:
        # Its make_conditional() adds a Date; gunicorn writes its own, so it would come twice.
        response.headers.pop("Date", None)
    if response.response is not body and hasattr(body, "close"):
        # A streamed file (static) is now read through a generator: keep closing the file.
        response.call_on_close(body.close)
    return response


def _accepted_codings(req=None) -> list[str]:
    """Our codings this request accepts (``gzip;q=0`` and no Accept-Encoding accept none)."""
    accepted = (req or request).accept_encodings
    return [coding for coding in ALGORITHMS if accepted[coding] > 0]


def encoded_etag(etag: str, coding: str) -> str:
    """The tag Flask-Compress gives the ``coding`` representation of a strong ``etag``."""
    return f"{etag}:{coding}"


def _variants(etag: str, req=None) -> list[str]:
    return [etag, *(encoded_etag(etag, coding) for coding in _accepted_codings(req))]


def matches_etag(etag: str, req=None) -> bool:
    """Does If-None-Match name this (unquoted) ETag in a form this request may get: the plain
    one (identity, or a body too small to compress) or one of an accepted coding?

    Weak comparison, as RFC 9110 §13.1.2 requires for If-None-Match (a proxy may have weakened
    the tag); ``*`` matches.
    """
    req = req or request
    return any(req.if_none_match.contains_weak(tag) for tag in _variants(etag, req))


def _echo_sent_etag(response, req=None):
    """A 304 from a route that compared with :func:`matches_etag` carries the plain ETag; the
    client may hold the gzip one. Send the form it named, so its cache updates that copy
    (RFC 9111 §4.3.4)."""
    req = req or request
    etag, weak = response.get_etag()
    if not etag or weak or req.if_none_match.contains_weak(etag):
        return response
    for tag in _variants(etag, req)[1:]:
        if req.if_none_match.contains_weak(tag):
            response.set_etag(tag)
            break
    return response
