"""Absolute URLs, and the hosts the app answers for.

Every absolute URL the app writes — feed addresses and their ``webcal://`` links, the QR codes of
feeds and check-ins, each calendar event's ``URL:`` — is built here. With ``PUBLIC_URL`` set
(production) its scheme and host are ``PUBLIC_URL``'s, whatever ``Host`` the request sent, and
only ``PUBLIC_URL``'s host and the ``TRUSTED_HOSTS`` listed are answered: any other host gets 400
(Flask's ``TRUSTED_HOSTS`` is set from the same list), so a forged ``Host`` can neither plant its
address in a page, a feed or the render cache, nor be answered at all. Without it (demo mode,
tests) URLs follow the request's host, as Flask does by default.

Cached documents that contain absolute URLs (the feeds) are kept under :func:`base_url`: one
entry for every host with ``PUBLIC_URL``, one per host without, so hosts never mix. Cached pages
contain relative URLs only.

Also ``url_for`` once per endpoint and request for pages and feeds that link hundreds of rows.
"""
from __future__ import annotations

from typing import Callable

from flask import current_app, g, request, url_for
from flask_babel import gettext as _
from werkzeug.exceptions import SecurityError
from werkzeug.wsgi import get_host

from .config import normalise_public_url, public_host

_MARKER = 918273645
# Set by the host check on a request for a host that is not trusted (the refused host's name).
UNTRUSTED_HOST = "partyday.untrusted_host"
# Answered for any host: load balancers and monitors ask the machine's own address.
ANY_HOST_PATHS = frozenset({"/healthz"})


def base_url(app=None, req=None) -> str:
    """``scheme://host/`` of every absolute URL: ``PUBLIC_URL``'s, else the request's."""
    origin = (app or current_app).config.get("PUBLIC_URL")
    return f"{origin}/" if origin else (req or request).host_url


def external_url(endpoint: str, **values) -> str:
    """``url_for(endpoint, _external=True, **values)`` with ``PUBLIC_URL``'s scheme and host."""
    origin = current_app.config.get("PUBLIC_URL")
    if origin:
        return origin + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def webcal_url(url: str) -> str:
    """The ``webcal://`` form of a feed's URL (calendar apps open it as a subscription)."""
    return "webcal://" + url.split("://", 1)[1]


def id_urls(endpoint: str, parameter: str, *, external: bool = False) -> Callable[[object], str]:
    """``value -> url_for(endpoint, **{parameter: value})`` built from one url_for call (kept in
    ``g`` for the request); the endpoint must take ``parameter`` as its only variable part."""
    patterns = g.setdefault("_id_url_patterns", {})
    key = (endpoint, parameter, external)
    if key not in patterns:
        build = external_url if external else url_for
        head, tail = build(endpoint, **{parameter: _MARKER}).split(str(_MARKER))
        patterns[key] = head, tail
    head, tail = patterns[key]
    return lambda value: f"{head}{value}{tail}"


def id_url(endpoint: str, parameter: str, value) -> str:
    """The template global: ``{{ id_url('booking.slot', 'slot_id', slot.id) }}``."""
    return id_urls(endpoint, parameter)(value)


def register(app) -> None:
    app.add_template_global(id_url)


# -- trusted hosts ---------------------------------------------------------------------------------

def trusted_hosts(config) -> list[str] | None:
    """``PUBLIC_URL``'s host, then the ``TRUSTED_HOSTS`` listed (``.example.org`` also allows its
    subdomains); None (every host) when neither is set."""
    hosts = []
    for host in [public_host(config.get("PUBLIC_URL"))] + list(config.get("TRUSTED_HOSTS") or []):
        if host and host not in hosts:
            hosts.append(host)
    return hosts or None


class TrustedHostMiddleware:
    """Checks ``Host`` (as ProxyFix passes it on, so a forwarded host is checked too) before
    anything else can read it. An unknown host is not answered here: the request goes to Flask
    (past the feed revalidation, which must not answer it) under a trusted host, marked, and
    :func:`refuse_untrusted_host` answers 400 with the usual error page, its headers and logs."""

    def __init__(self, app, wsgi_app, hosts: list[str], stand_in: str):
        self.app, self.wsgi_app, self.hosts, self.stand_in = app, wsgi_app, hosts, stand_in

    def __call__(self, environ, start_response):
        try:
            get_host(environ, self.hosts)
        except SecurityError:
            asked = environ.get("HTTP_HOST", "")
            environ["HTTP_HOST"] = self.stand_in  # so that Flask can still route and build URLs
            if environ.get("PATH_INFO") not in ANY_HOST_PATHS:
                environ[UNTRUSTED_HOST] = asked
                return type(self.app).wsgi_app(self.app, environ, start_response)
        return self.wsgi_app(environ, start_response)


def refuse_untrusted_host():
    asked = request.environ.get(UNTRUSTED_HOST)
    if asked is None:
        return None
    from .errors import _error_page

    current_app.logger.warning("request for an unknown host refused: %r", asked[:100])
    return _error_page(400, _("Unknown address"),
                       _("This site is not served under the address you used. Please use %(url)s",
                         url=base_url()))


def _stand_in(config, hosts: list[str]) -> str:
    origin = config.get("PUBLIC_URL")
    if origin:
        return origin.split("://", 1)[1]
    return next((h for h in hosts if not h.startswith(".")), hosts[0].lstrip("."))


def init_app(app) -> None:
    """Flask's ``TRUSTED_HOSTS`` and the host check. Call before ProxyFix is installed (core/
    security.py), so that the check sees the host the proxy forwarded."""
    app.config["PUBLIC_URL"] = normalise_public_url(app.config.get("PUBLIC_URL"))  # also when set by a test
    hosts = trusted_hosts(app.config)
    app.config["TRUSTED_HOSTS"] = hosts
    if hosts is None:
        return
    app.wsgi_app = TrustedHostMiddleware(app, app.wsgi_app, hosts, _stand_in(app.config, hosts))
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_untrusted_host)
