"""Request ids, JSON log lines and the health check (fast; the gunicorn side is in
test_ops_multi_instance.py)."""
from __future__ import annotations

import io
import json
import logging
import os
import sys

import pytest

from app import create_app
from blueprints.core import logging as app_logging
from blueprints.core.logging import JsonFormatter

from .conftest import app_config


def test_a_request_id_is_generated_and_echoed_anonymous(client):
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert len(first) == 32 and first != second


@pytest.mark.parametrize("offered", ["abc-123", "7f1c2a9e.req:1@nginx", "a" * 128])
def test_the_proxys_request_id_is_kept(client, offered):
    assert client.get("/healthz", headers={"X-Request-ID": offered}).headers["X-Request-ID"] == offered


@pytest.mark.parametrize("offered", ["", "has space", 'quo"te', "a" * 129, "中文"])
def test_an_unfit_request_id_is_replaced(client, offered):
    echoed = client.get("/healthz", headers={"X-Request-ID": offered}).headers["X-Request-ID"]
    assert echoed != offered and len(echoed) == 32


def test_error_pages_carry_the_request_id_too(client):
    response = client.get("/no-such-page", headers={"X-Request-ID": "lost-1"})
    assert response.status_code == 404 and response.headers["X-Request-ID"] == "lost-1"


def _record(name="app", msg="booking %s", args=(7,), exc_info=None):
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, exc_info)


def test_json_lines_carry_the_request_id_method_and_path(app):
    with app.test_request_context("/slots/7/book", method="POST", headers={"X-Request-ID": "rid-9"}):
        line = json.loads(JsonFormatter().format(_record()))
    assert line["message"] == "booking 7" and line["level"] == "warning" and line["logger"] == "app"
    assert (line["request_id"], line["method"], line["path"]) == ("rid-9", "POST", "/slots/7/book")
    assert line["ts"].endswith("+00:00")


def test_json_lines_keep_tracebacks_on_one_line():
    try:
        raise ValueError("boom")
    except ValueError:
        text = JsonFormatter().format(_record(exc_info=sys.exc_info()))
    assert "\n" not in text
    line = json.loads(text)
    assert line["exc"].endswith("ValueError: boom")


def test_gunicorn_access_records_become_fields():
    atoms = {"h": "10.0.0.2", "m": "POST", "U": "/slots/7/book", "q": "", "s": "302", "B": 209, "M": 38,
             "a": 'curl "7"', "f": "-", "{x-request-id}o": "rid-1", "{x-forwarded-for}i": "1.2.3.4"}
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(h)s %(s)s", (), None)
    record.args = atoms  # as gunicorn passes them: one mapping
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "10.0.0.2 302"
    assert line["event"] == "access" and line["status"] == 302 and line["duration_ms"] == 38
    assert (line["request_id"], line["user_agent"], line["forwarded_for"]) == ("rid-1", 'curl "7"', "1.2.3.4")
    assert "referer" not in line and "query" not in line


def test_outside_gunicorn_the_app_logs_json_to_stderr(monkeypatch, tmp_path):
    """`flask run` or any bare process: the app installs one JSON handler on the root logger
    (never a second one, however many apps the process makes)."""
    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(app_logging, "_installed_handler", None)
    url = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    application = create_app(app_config(url, TESTING=False, LOG_FORMAT="json"))
    create_app(app_config(url, TESTING=False, LOG_FORMAT="json"))
    assert logging.root.handlers == [app_logging._installed_handler]
    stream = io.StringIO()
    app_logging._installed_handler.setStream(stream)
    with application.test_request_context("/x", headers={"X-Request-ID": "rid-2"}):
        application.logger.warning("slot %s is full", 3)
    line = json.loads(stream.getvalue())
    assert line["message"] == "slot 3 is full" and line["request_id"] == "rid-2"


def test_text_logs_in_tests_and_on_request():
    assert app_logging._log_format(create_app(app_config("sqlite://"))) == "text"
    assert app_logging._log_format(create_app(app_config("sqlite://", TESTING=False))) in {
        "json", os.environ.get("LOG_FORMAT", "json").lower()}


# -- health check ------------------------------------------------------------------------------

def test_healthz_checks_redis_when_configured(tmp_path):
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("needs Redis: set TEST_REDIS_URL")
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    response = create_app(app_config(url, REDIS_URL=redis_url)).test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_is_503_naming_redis_when_redis_is_down(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    application = create_app(app_config(url, REDIS_URL="redis://127.0.0.1:1/0"))
    response = application.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "ok", "redis": "unavailable"}
