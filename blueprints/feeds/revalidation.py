"""A calendar's revalidation answered before Flask: ``GET /feeds/<token>.ics`` with
``If-None-Match`` whose cached document is current and unchanged gets its 304 straight from the
render cache.

Calendar apps send this request for every subscribed feed about once an hour, and nearly always
get 304. Through Flask it costs the whole per-request machinery (session, login manager, Babel,
rate limiter, every after-request hook) around one cache lookup; here it is the lookup and the
same headers, built by the same functions the Flask path uses (``tests/test_feeds_revalidation.py``
compares both answers header by header). Anything else — no cached entry, a changed document,
an unknown token, Redis down — goes on to Flask unchanged.
"""
from __future__ import annotations

import logging
import re

from blueprints.core import compression, render_cache, security, urls
from blueprints.core.logging import REQUEST_ID_HEADER, request_id_of

from . import documents, routes

log = logging.getLogger(__name__)
FEED_PATH = re.compile(r"/feeds/([A-Za-z0-9_-]{1,64})\.ics")


class RevalidationMiddleware:
    # What a 304 carries besides its request id depends only on these request headers and the
    # document's ETag: each combination is built once by the Flask path's functions, then reused.
    _ANSWER_INPUTS = ("HTTP_IF_NONE_MATCH", "HTTP_ACCEPT_ENCODING", "wsgi.url_scheme")
    _KEPT_ANSWERS = 4096
    _KEPT_HOSTS = 64

    def __init__(self, app, wsgi_app):
        self.app, self.wsgi_app = app, wsgi_app
        self._answers: dict[tuple, list | None] = {}
        self._base_urls: dict[tuple, str] = {}

    def __call__(self, environ, start_response):
        if (environ.get("REQUEST_METHOD") == "GET" and environ.get("HTTP_IF_NONE_MATCH")
                and not environ.get("QUERY_STRING")):  # anything unusual is Flask's to check
            match = FEED_PATH.fullmatch(environ.get("PATH_INFO", ""))
            if match:
                headers = self._not_modified(environ, match.group(1))
                if headers is not None:
                    start_response("304 NOT MODIFIED", headers)
                    return []
        return self.wsgi_app(environ, start_response)

    def _not_modified(self, environ, token: str) -> list | None:
        """The 304's headers, or None: Flask answers."""
        cache = render_cache.for_app(self.app)
        if cache is None:
            return None
        try:
            entry = cache.fresh(cache.key(*documents.cache_parts(token, self._base_url(environ))))
        except Exception as exc:  # noqa: BLE001 - Flask's path decides, with its own fallback
            log.warning("render cache unavailable: %s", exc)
            return None
        if entry is None or not entry.meta.get("found"):
            return None
        key = (entry.meta["etag"], *(environ.get(name) for name in self._ANSWER_INPUTS))
        headers = _kept(self._answers, self._KEPT_ANSWERS, key,
                        lambda: self._answer(environ, documents.from_meta(entry.body, entry.meta)))
        if headers is None:
            return None
        return [*headers, (REQUEST_ID_HEADER, request_id_of(self.app.request_class(environ)))]

    def _answer(self, environ, found) -> list | None:
        """The headers the Flask path gives this 304, but the request id; None: not a 304."""
        req = self.app.request_class(environ)
        if not routes.not_modified(found, req):
            return None
        response = routes.not_modified_response(found, self.app.response_class)
        # What the app's after-request hooks add to every answer, in the same order.
        response.vary.add("HX-Request")
        security.set_security_headers(response, req)
        compression.not_modified_headers(response, req)
        return response.get_wsgi_headers(environ).to_wsgi_list()

    def _base_url(self, environ) -> str:
        where = tuple(environ.get(name) for name in ("wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME",
                                                      "SERVER_PORT", "SCRIPT_NAME"))
        return _kept(self._base_urls, self._KEPT_HOSTS, where,
                     lambda: urls.base_url(self.app, self.app.request_class(environ)))


def _kept(store: dict, limit: int, key, make):
    """``store[key]``, made on first use; the store starts afresh when full (bounded memory)."""
    if key not in store:
        if len(store) >= limit:
            store.clear()
        store[key] = make()
    return store[key]


def install(app) -> None:
    """Inside ProxyFix (installed later by core/security.py), so the host it sees is the client's."""
    app.wsgi_app = RevalidationMiddleware(app, app.wsgi_app)
