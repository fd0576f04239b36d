"""Structured logs: one JSON object per line on stderr, each carrying the request id.

The request id comes from the reverse proxy's ``X-Request-ID`` header when it sends a sane one
(nginx: ``proxy_set_header X-Request-ID $request_id;``), else it is generated here; it is
echoed in the response's ``X-Request-ID`` header, so that a user's error report, the proxy's
log, gunicorn's access log and the application's log lines can all be matched.

Secret URLs never reach a log line: :func:`redact` turns ``/feeds/<token>.ics`` into
``/feeds/<redacted>.ics`` and ``/host/check-in/<token>`` into ``/host/check-in/<redacted>`` (also
percent-encoded, as in a login's ``?next=``) in every JSON line — gunicorn's access log and error
log, the app's records, tracebacks — and in the text format's records (the app's handler and the
development server's access log). The README's nginx ``log_format`` does the same.

``LOG_FORMAT=json`` (the default outside debug mode and tests) or ``text``; ``LOG_LEVEL``
(default ``INFO``). Under gunicorn, ``gunicorn.conf.py`` configures the same formatter for its
own and the access log, and this module then leaves the handlers alone.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone

from flask import Flask, g, has_request_context, request
from flask.logging import default_handler

REQUEST_ID_HEADER = "X-Request-ID"
# What we accept from the proxy: short, printable, no spaces or quotes (it ends up in logs).
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")

# The secret part of each secret URL (security.TOKEN_PATH_PREFIXES; tests check they agree): a
# path separator may be written "/" or "%2F" (a URL inside a query string). Feed tokens are
# urlsafe base64 before ".ics"; check-in tokens are itsdangerous' base64 with a "." inside.
_SLASH = r"(?:/|%2[Ff])"
_TOKEN = r"[A-Za-z0-9_.-]"
_SECRETS = re.compile(
    rf"(?P<feed>{_SLASH}feeds{_SLASH}){_TOKEN}+?(?=\.ics|[^A-Za-z0-9_.-]|$)"
    rf"|(?P<checkin>{_SLASH}host{_SLASH}check-in{_SLASH}){_TOKEN}+"
)
REDACTED = "<redacted>"


def redact(text: str) -> str:
    """``text`` with the token of every secret URL in it replaced by ``<redacted>``."""
    if "feeds" not in text and "check-in" not in text:  # the common case, without a regex
        return text
    return _SECRETS.sub(lambda match: (match.group("feed") or match.group("checkin")) + REDACTED, text)


class RedactingFilter(logging.Filter):
    """Redacts a record's message before any handler formats it (text logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install_redaction(target: logging.Handler | logging.Logger) -> None:
    """Add the redacting filter to a handler or logger once."""
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter())


# gunicorn access-log atoms -> JSON field names (see gunicorn.glogging.Logger.atoms).
_ACCESS_FIELDS = {
    "h": "remote_addr",
    "m": "method",
    "U": "path",
    "q": "query",
    "s": "status",
    "B": "bytes",
    "M": "duration_ms",
    "f": "referer",
    "a": "user_agent",
    "{x-request-id}o": "request_id",
    "{x-forwarded-for}i": "forwarded_for",
}


def current_request_id() -> str:
    """The id of the current request (from the proxy's header if sane, else a new one)."""
    request_id = g.get("request_id")
    if request_id is None:
        request_id = g.request_id = request_id_of(request)
    return request_id


def request_id_of(req) -> str:
    """The proxy's request id if it is a sane one, else a new one."""
    offered = req.headers.get(REQUEST_ID_HEADER, "")
    return offered if _VALID_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON; used by the app and by gunicorn.conf.py."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            entry["event"] = "access"
            for atom, field in _ACCESS_FIELDS.items():
                value = record.args.get(atom)
                if value not in (None, "-", ""):
                    entry[field] = value
            if "status" in entry:
                try:
                    entry["status"] = int(entry["status"])
                except (TypeError, ValueError):
                    pass
        elif has_request_context():
            entry["request_id"] = current_request_id()
            entry["method"] = request.method
            entry["path"] = request.path
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # The whole line: message, path, query, referer, traceback (JSON escapes none of a
        # token's characters, nor "/").
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


_installed_handler: logging.Handler | None = None


def _log_format(app: Flask) -> str:
    configured = app.config.get("LOG_FORMAT") or os.environ.get("LOG_FORMAT")
    if configured:
        return configured.lower()
    return "text" if (app.debug or app.testing) else "json"


def configure_logging(app: Flask) -> None:
    """Request ids on every request; JSON log lines on stderr unless LOG_FORMAT=text."""

    @app.before_request
    def assign_request_id():
        current_request_id()

    @app.after_request
    def echo_request_id(response):
        response.headers[REQUEST_ID_HEADER] = current_request_id()
        return response

    if _log_format(app) != "json":
        # Flask's own handler, and the development server's access log (`flask run`).
        install_redaction(default_handler)
        install_redaction(logging.getLogger("werkzeug"))
        return
    global _installed_handler
    root = logging.getLogger()
    # gunicorn (logconfig_dict in gunicorn.conf.py) or the host program may have set up the root
    # logger already; only a bare process gets our handler, and only once however many apps it makes.
    if not root.handlers and _installed_handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
        _installed_handler = handler
    # Records of app.logger go to the root's JSON handler, not to Flask's plain-text one.
    app.logger.removeHandler(default_handler)
