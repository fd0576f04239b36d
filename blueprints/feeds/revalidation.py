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
    def __init__(self, app, wsgi_app):
        self.app, self.wsgi_app = app, wsgi_app

    def __call__(self, environ, start_response):
        if (environ.get("REQUEST_METHOD") == "GET" and environ.get("HTTP_IF_NONE_MATCH")
                and not environ.get("QUERY_STRING")):  # anything unusual is Flask's to check
            match = FEED_PATH.fullmatch(environ.get("PATH_INFO", ""))
            if match:
                response = self._not_modified(environ, match.group(1))
                if response is not None:
                    return response(environ, start_response)
        return self.wsgi_app(environ, start_response)

    def _not_modified(self, environ, token: str):
        cache = render_cache.for_app(self.app)
        if cache is None:
            return None
        req = self.app.request_class(environ)
        try:
            entry = cache.fresh(cache.key(*documents.cache_parts(token, urls.base_url(self.app, req))))
        except Exception as exc:  # noqa: BLE001 - Flask's path decides, with its own fallback
            log.warning("render cache unavailable: %s", exc)
            return None
        found = documents.from_meta(entry.body, entry.meta) if entry is not None else None
        if found is None or not routes.not_modified(found, req):
            return None
        response = routes.not_modified_response(found, self.app.response_class)
        # What the app's after-request hooks add to every answer, in the same order.
        response.vary.add("HX-Request")
        security.set_security_headers(response, req)
        response.headers[REQUEST_ID_HEADER] = request_id_of(req)
        return compression.not_modified_headers(response, req)


def install(app) -> None:
    """Inside ProxyFix (installed later by core/security.py), so the host it sees is the client's."""
    app.wsgi_app = RevalidationMiddleware(app, app.wsgi_app)
