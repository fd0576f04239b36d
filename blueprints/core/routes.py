"""Health check, language switch, robots.txt."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, redirect, request, session, url_for
from sqlalchemy import text

from .extensions import db
from .forms import EmptyForm
from .shared_state import redis_client

bp = Blueprint("core", __name__)


@bp.get("/healthz")
def healthz():
    """For load balancers and monitors: cheap checks of the database and (when configured) Redis,
    as JSON; 503 when a dependency is down, so that the proxy stops sending traffic here. The
    jobs' backlog is reported beside them, for monitors: a growing one means no consumer runs,
    which is no reason to stop sending this instance requests."""
    checks = {"database": _check_database()}
    if current_app.config.get("REDIS_URL"):
        checks["redis"] = _check_redis()
    healthy = all(result == "ok" for result in checks.values())
    jobs = _jobs_backlog() if checks["database"] == "ok" else None
    response = jsonify(status="ok" if healthy else "error", **checks, **({"jobs": jobs} if jobs else {}))
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def _check_database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        current_app.logger.warning("health check: database unavailable: %s", exc)
        return "unavailable"
    finally:
        db.session.rollback()  # do not hold the connection in a transaction


def _jobs_backlog() -> dict | None:
    """The queue's figures, from the jobs feature when the app has it (``jobs/routes.py``)."""
    backlog = current_app.extensions.get("health_jobs_backlog")
    if backlog is None:
        return None
    try:
        return backlog()
    except Exception as exc:  # noqa: BLE001 - e.g. a database not yet migrated to the jobs table
        current_app.logger.warning("health check: jobs backlog unavailable: %s", exc)
        return None
    finally:
        db.session.rollback()


def _check_redis() -> str:
    try:
        redis_client().ping()
        return "ok"
    except Exception as exc:  # noqa: BLE001
        current_app.logger.warning("health check: redis unavailable: %s", exc)
        return "unavailable"


def safe_next(target: str | None, fallback: str) -> str:
    """Only local paths, so that ?next= cannot send people to another site."""
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target


@bp.post("/lang")
def set_language():
    form = EmptyForm()
    lang = request.form.get("lang", "")
    if form.validate_on_submit() and lang in current_app.config["LANGUAGES"]:
        session["lang"] = lang
    return redirect(safe_next(request.form.get("next"), url_for("menu.index")))


@bp.get("/favicon.ico")
def favicon():
    # Browsers and tools that ignore <link rel="icon"> still ask /favicon.ico: send them to the SVG.
    return redirect(url_for("static", filename="favicon.svg"), code=301)


@bp.get("/robots.txt")
def robots():
    # Check-ins (the path as served) and personal pages. Not /feeds/: Google Calendar's fetcher
    # obeys robots.txt and would refuse to subscribe; a feed answers X-Robots-Tag: noindex
    # instead, as every secret URL does (security.py), which a crawler only sees if allowed in.
    paths = ["/host/check-in/", "/account/"]
    body = "User-agent: *\n" + "".join(f"Disallow: {path}\n" for path in paths)
    return current_app.response_class(body, mimetype="text/plain")
