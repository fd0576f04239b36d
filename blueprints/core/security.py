"""HTTP security: response headers, cookies, the reverse proxy, sessions and login rate limits.

Headers are set by one ``after_request`` rather than Flask-Talisman: its last release (1.1.0) is
from 2023, it trusts ``X-Forwarded-Proto`` from anyone, it switches ``SESSION_COOKIE_SECURE`` on
for the whole process inside a request, and its Referrer-Policy cannot differ per URL. What we
need is a handful of fixed headers, so they are written out here where they can be read.

Login rate limits use Flask-Limiter, one limiter per application (so two apps in one process, as
in the tests, do not share state through a module-level singleton), stored in Redis when
``REDIS_URL`` is set so that every instance counts the same attempts.
"""
from __future__ import annotations

from flask import Flask, current_app, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

from .extensions import login_manager

# No 'unsafe-inline' and no 'unsafe-eval' anywhere: every script is a file under /static, htmx is
# configured (htmx-config meta in base.html) not to evaluate code or insert <style>, and no
# template carries a style= attribute, so styles need nothing beyond 'self' either.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
])
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
HSTS = "max-age=31536000"
# URLs whose path is a secret (calendar feeds, signed check-in codes) send no Referer at all;
# every other page sends it only to this site, so no URL of ours reaches another site.
TOKEN_PATH_PREFIXES = ("/feeds/", "/host/check-in/")

LOGIN_ENDPOINT = "accounts.login"
# Session keys that survive a login or logout: preferences, never identity or tokens.
KEPT_SESSION_KEYS = ("lang",)


def init_app(app: Flask) -> None:
    """Call after every blueprint is registered (the login view gets its limits here)."""
    proxies = int(app.config.get("PROXY_FIX") or 0)
    if proxies:
        # Trust X-Forwarded-For/-Proto/-Host/-Port from exactly this many proxies in front.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies,
                                x_port=proxies)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.session_interface = HttpsAwareSessionInterface()
    login_manager.session_protection = app.config.get("SESSION_PROTECTION") or "strong"
    app.after_request(set_security_headers)
    _init_login_limits(app)


class HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """The session cookie is ``Secure`` whenever the request came over https (directly or, with
    ``PROXY_FIX``, through the proxy), or always when ``SESSION_COOKIE_SECURE`` is set."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def set_security_headers(response, req=None):
    req = req or request
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Permissions-Policy"] = PERMISSIONS_POLICY
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    secret_path = req.path.startswith(TOKEN_PATH_PREFIXES)
    headers["Referrer-Policy"] = "no-referrer" if secret_path else "same-origin"
    if req.is_secure:
        headers["Strict-Transport-Security"] = HSTS
    return response


# -- sessions --------------------------------------------------------------------------------

def new_session() -> None:
    """Start a fresh session (login and logout): nothing from before survives except
    preferences, so a session id or CSRF token planted before login is worthless after it."""
    kept = {key: session[key] for key in KEPT_SESSION_KEYS if key in session}
    session.clear()
    session.update(kept)


# -- login rate limits -----------------------------------------------------------------------

def storage_uri(config) -> str:
    return config.get("RATELIMIT_STORAGE_URI") or config.get("REDIS_URL") or "memory://"


def _account_key() -> str:
    # Usernames are compared exactly, but any spelling of one counts against the same budget.
    return "account:" + request.form.get("username", "").strip().lower()[:60]


def _failed(response) -> bool:
    """Only failed attempts use up the budget; a successful login redirects."""
    return response.status_code not in (301, 302, 303)


def _init_login_limits(app: Flask) -> None:
    limiter = Limiter(
        key_func=get_remote_address,
        storage_uri=storage_uri(app.config),
        key_prefix=app.config.get("RATELIMIT_KEY_PREFIX", "partyday"),
        strategy="moving-window",
        headers_enabled=True,
        # Redis unreachable: keep counting in memory (per instance) rather than lock everyone out.
        in_memory_fallback_enabled=True,
        swallow_errors=True,
    )
    limiter.init_app(app)
    app.extensions["login_limiter"] = limiter
    view = app.view_functions.get(LOGIN_ENDPOINT)
    if view is not None:
        view = limiter.limit(app.config.get("LOGIN_RATE_LIMIT", "10 per minute"), key_func=_account_key,
                             methods=["POST"], deduct_when=_failed)(view)
        view = limiter.limit(app.config.get("LOGIN_ADDRESS_RATE_LIMIT", "30 per minute"),
                             key_func=get_remote_address, methods=["POST"], deduct_when=_failed)(view)
        app.view_functions[LOGIN_ENDPOINT] = view

    @app.errorhandler(429)
    def too_many_requests(error):
        from .errors import _error_page

        response = _error_page(
            429, _("Too many attempts"),
            _("Too many login attempts in a short time. Please wait a few minutes and try again."),
        )
        return response


def reset_login_limits(app: Flask | None = None) -> None:
    """Forget every counted attempt (tests, or an administrator after an incident)."""
    limiter = (app or current_app).extensions["login_limiter"]
    limiter.reset()
