"""Configuration from the environment."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit


class ConfigError(RuntimeError):
    pass


def _dev_secret_key(instance_path: Path) -> str:
    """A development key generated once and kept under instance/."""
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def normalise_database_url(url: str) -> str:
    """Let people write postgres:// or postgresql:// and still get psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def normalise_public_url(url: str | None) -> str | None:
    """``PUBLIC_URL`` as ``scheme://host[:port]`` (lower case, no trailing slash), or None when
    unset. Only an origin: a path, query, fragment or user name would be dropped or doubled in
    the URLs built from it, so they are refused when the app starts."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    try:
        port = parts.port
    except ValueError:
        port, host = None, ""
    if (scheme not in {"http", "https"} or not host or parts.path not in {"", "/"} or parts.query
            or parts.fragment or parts.username or parts.password or url.strip().endswith(("?", "#"))):
        raise ConfigError(f"PUBLIC_URL must be an origin such as https://partyday.example.gov.cn, not {url!r}")
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if (scheme, port) in {("http", 80), ("https", 443)}:
        port = None
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def public_host(public_url: str | None) -> str | None:
    """The host name of ``PUBLIC_URL`` (what Flask's TRUSTED_HOSTS compares; ports are ignored)."""
    return urlsplit(public_url).hostname if public_url else None


def _host_list(value: str | None) -> list[str] | None:
    hosts = [host.strip() for host in (value or "").split(",") if host.strip()]
    return hosts or None


def from_environment(instance_path: Path) -> dict:
    instance_path.mkdir(parents=True, exist_ok=True)
    debug = os.environ.get("FLASK_DEBUG") == "1"
    demo = os.environ.get("DEMO_MODE", "").lower() in {"1", "true", "yes"}
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance_path / 'partyday.sqlite3'}"
    secret_key = os.environ.get("SECRET_KEY")
    if not secret_key:
        if not (debug or demo):
            raise ConfigError(
                "SECRET_KEY must be set outside debug/demo mode (set DEMO_MODE=1 to use a generated key)."
            )
        secret_key = _dev_secret_key(instance_path)
    return {
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(database_url),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "PORT": int(os.environ.get("PORT", "5000")),
        "DEMO_MODE": demo,
        "PREFERRED_URL_SCHEME": os.environ.get("PREFERRED_URL_SCHEME", "http"),
        "SMTP_HOST": os.environ.get("SMTP_HOST") or None,
        "SMTP_PORT": int(os.environ.get("SMTP_PORT", "25")),
        "MAIL_FROM": os.environ.get("MAIL_FROM", "partyday@localhost"),
        "LOGIN_RATE_LIMIT": os.environ.get("LOGIN_RATE_LIMIT", "10 per minute"),  # failures per account
        "LOGIN_ADDRESS_RATE_LIMIT": os.environ.get("LOGIN_ADDRESS_RATE_LIMIT", "30 per minute"),  # per client
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI") or None,  # default: REDIS_URL
        "PROXY_FIX": int(os.environ.get("PROXY_FIX") or 0),  # proxies in front whose X-Forwarded-* we trust
        "SESSION_COOKIE_SECURE": os.environ.get("SESSION_COOKIE_SECURE", "").lower() in {"1", "true", "yes"},
        "RENDER_CACHE": os.environ.get("RENDER_CACHE", "1") != "0",
        "CACHE_VERSIONS_FILE": os.environ.get("CACHE_VERSIONS_FILE") or None,
        "SESSION_PROTECTION": os.environ.get("SESSION_PROTECTION", "strong"),
        # The scheme and host of every absolute URL the app writes (core/urls.py); its host and
        # these are the only Host headers answered (others get 400).
        "PUBLIC_URL": normalise_public_url(os.environ.get("PUBLIC_URL")),
        "TRUSTED_HOSTS": _host_list(os.environ.get("TRUSTED_HOSTS")),
        # Durable jobs (blueprints/jobs): reminders this many hours before a session; huey's hand-over
        # queue in this file when REDIS_URL is unset; a consumer's hold on a job it runs.
        "REMINDER_HOURS": float(os.environ.get("REMINDER_HOURS", "24")),
        "JOBS_QUEUE_FILE": os.environ.get("JOBS_QUEUE_FILE") or None,
        "JOBS_LEASE_SECONDS": int(os.environ.get("JOBS_LEASE_SECONDS", "300")),
    }


DEFAULTS = {
    "BABEL_DEFAULT_LOCALE": "zh_CN",
    "BABEL_DEFAULT_TIMEZONE": "Asia/Shanghai",
    "LANGUAGES": {"zh_CN": "中文", "en": "English"},
    "SQLALCHEMY_TRACK_MODIFICATIONS": False,
    # With hx-boost the page (and its token) may stay open for a whole working day.
    "WTF_CSRF_TIME_LIMIT": 12 * 3600,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "PAGE_SIZE": 20,
    "MAX_CONTENT_LENGTH": 5 * 1024 * 1024,
}
