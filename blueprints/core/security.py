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

from flask import Flask, current_app, has_request_context, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user
from limits.storage import MemoryStorage, RedisStorage
from werkzeug.middleware.proxy_fix import ProxyFix

from . import urls
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
FEED_PATH_PREFIX = "/feeds/"
# Secret URLs are for the people (and calendar apps) they were given to, not for search engines.
ROBOTS_NOINDEX = "noindex, nofollow"
# What may keep a copy of an answer (RFC 9111), decided in one place (cache_control_for):
# personal data is never stored, a secret feed is kept by the calendar app that polls it but
# revalidated every time and never stored by a shared cache; public pages keep their own policy.
NO_STORE = "no-store"
PRIVATE_REVALIDATE = "private, no-cache"

LOGIN_ENDPOINT = "accounts.login"
PASSWORD_CHANGE_ENDPOINT = "accounts.change_password"
# The login and the password change count wrong passwords against one budget per account.
ACCOUNT_SCOPE = "password-guesses"
# Session keys that survive a login or logout: preferences, never identity or tokens.
KEPT_SESSION_KEYS = ("lang",)


def init_app(app: Flask) -> None:
    """Call after every blueprint is registered (the login view gets its limits here)."""
    urls.init_app(app)  # Flask's TRUSTED_HOSTS and the host check, inside ProxyFix
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
    if secret_path:
        headers["X-Robots-Tag"] = ROBOTS_NOINDEX
    cache_control = cache_control_for(req)
    if cache_control is not None:
        headers["Cache-Control"] = cache_control
    if req.is_secure:
        headers["Strict-Transport-Security"] = HSTS
    return response


def cache_control_for(req) -> str | None:
    """The Cache-Control of every answer, one rule (None: the route's own, e.g. the ETag-ed
    ``private, no-cache`` of public pages and fragments, static files' defaults):

    * a secret feed (``/feeds/<token>.ics``: 200, 304 and errors alike): ``private, no-cache`` —
      the calendar app keeps its copy and revalidates it with If-None-Match every time (304s
      need a stored copy, which ``no-store`` forbids); no shared cache may keep it;
    * any other secret URL (check-in) and every answer to a logged-in user (pages, htmx
      fragments, rosters, spreadsheets, a booking's .ics, error pages): ``no-store``.

    Also used by the feed revalidation before Flask (feeds/revalidation.py), where only feed
    URLs arrive and no request context exists.
    """
    if req.path.startswith(FEED_PATH_PREFIX):
        return PRIVATE_REVALIDATE
    if req.path.startswith(TOKEN_PATH_PREFIXES):
        return NO_STORE
    if has_request_context() and request.endpoint != "static" and _logged_in():
        return NO_STORE
    return None


def _logged_in() -> bool:
    from flask import g
    from flask_login import current_user

    # Flask-Login loads the user on first use; a request that never asked (a 404 before any
    # view, an anonymous static file) has none to load unless its session names one.
    if "_login_user" not in g and "_user_id" not in session:
        return False
    return bool(current_user.is_authenticated)


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


def account_key(username: str) -> str:
    # Usernames are compared exactly, but any spelling of one counts against the same budget.
    return "account:" + username.strip().lower()[:60]


def login_username() -> str:
    """The username a login attempt names. Forms read posted form fields only (``BaseForm``),
    never a JSON body, and so does this: the limit counts exactly the credentials that get
    checked (a JSON login used to be checked and never counted)."""
    return request.form.get("username", "")


def _login_account_key() -> str:
    return account_key(login_username())


def _own_account_key() -> str:
    return account_key(current_user.username)


def _anonymous() -> bool:
    return not current_user.is_authenticated  # the view sends them to the login page


def _init_login_limits(app: Flask) -> None:
    """Every POST to the login (and to the password change) is counted before its password is
    checked: Flask-Limiter's ``hit`` is one atomic test-and-increment in the storage (a Lua script
    in Redis, a lock in memory), so parallel attempts cannot get past the limit the way they did
    while attempts were tested first and counted after the answer (``deduct_when``). A password
    found right gives its attempt back (``forgive_attempt``), so only failures use up the budget.
    Login and password change share one budget per account: guessing through a stolen session
    counts against the login too."""
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
    per_account = app.config.get("LOGIN_RATE_LIMIT", "10 per minute")
    view = app.view_functions.get(LOGIN_ENDPOINT)
    if view is not None:
        view = limiter.shared_limit(per_account, scope=ACCOUNT_SCOPE, key_func=_login_account_key,
                                    methods=["POST"])(view)
        view = limiter.limit(app.config.get("LOGIN_ADDRESS_RATE_LIMIT", "30 per minute"),
                             key_func=get_remote_address, methods=["POST"])(view)
        app.view_functions[LOGIN_ENDPOINT] = view
    view = app.view_functions.get(PASSWORD_CHANGE_ENDPOINT)
    if view is not None:
        app.view_functions[PASSWORD_CHANGE_ENDPOINT] = limiter.shared_limit(
            per_account, scope=ACCOUNT_SCOPE, key_func=_own_account_key, methods=["POST"],
            exempt_when=_anonymous)(view)

    @app.errorhandler(429)
    def too_many_requests(error):
        from .errors import _error_page

        if request.endpoint == PASSWORD_CHANGE_ENDPOINT:
            message = _("Too many wrong passwords in a short time. Please wait a few minutes and try again.")
        else:
            message = _("Too many login attempts in a short time. Please wait a few minutes and try again.")
        return _error_page(429, _("Too many attempts"), message)


def forgive_attempt() -> None:
    """The password this request checked was right: give back the attempt its limits counted.

    ``limits`` has no way to take an entry out of a moving window, so this removes the newest
    entry of each window itself (from the list Redis or the memory storage keeps). Entries are
    bare timestamps, so whether it is this request's own entry or a concurrent one's only moves
    one expiry by the length of a request; the count stays exactly the number of failures.
    Best effort: if the storage fails now, the success simply counts."""
    limiter = current_app.extensions.get("login_limiter")
    if limiter is None or not limiter.enabled:
        return
    try:
        storage = limiter.limiter.storage
        for counted in limiter.current_limits:
            if not counted.breached:
                _remove_newest_entry(storage, counted.key)
    except Exception:  # noqa: BLE001 - a success that stays counted is only a smaller budget
        current_app.logger.warning("could not give a login attempt back", exc_info=True)


def _remove_newest_entry(storage, key: str) -> None:
    if isinstance(storage, RedisStorage):
        storage.get_connection().lpop(storage.prefixed_key(key))
    elif isinstance(storage, MemoryStorage):
        with storage.locks[key]:
            entries = storage.events.get(key)
            if entries:
                entries.pop(0)  # newest first, as acquire_entry inserts them


def reset_login_limits(app: Flask | None = None) -> None:
    """Forget every counted attempt (tests, or an administrator after an incident)."""
    limiter = (app or current_app).extensions["login_limiter"]
    limiter.reset()
