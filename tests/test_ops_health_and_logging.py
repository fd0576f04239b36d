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


# -- secrets stay out of the logs (feed tokens, check-in tokens) -------------------------------------

FEED_TOKEN = "o9iDMGsofBHJhjb6Ry5uUl7cP-l1TlOawmBNf6h9fbo"
CHECKIN_TOKEN = "eyJiIjoxfQ.pDcly4fDK0FriS65_2ghX0LM4cY"


@pytest.mark.parametrize(("text", "logged"), [
    (f"/feeds/{FEED_TOKEN}.ics", "/feeds/<redacted>.ics"),
    (f"GET /feeds/{FEED_TOKEN}.ics?x=1 HTTP/1.1", "GET /feeds/<redacted>.ics?x=1 HTTP/1.1"),
    (f"https://partyday.example.gov.cn/feeds/{FEED_TOKEN}.ics", "https://partyday.example.gov.cn/feeds/<redacted>.ics"),
    (f"webcal://partyday.example.gov.cn/feeds/{FEED_TOKEN}.ics", "webcal://partyday.example.gov.cn/feeds/<redacted>.ics"),
    (f"/host/check-in/{CHECKIN_TOKEN}", "/host/check-in/<redacted>"),
    (f"POST /host/check-in/{CHECKIN_TOKEN} HTTP/1.1", "POST /host/check-in/<redacted> HTTP/1.1"),
    # the login's ?next= after an anonymous visit of a check-in link, percent-encoded
    (f"/login?next=%2Fhost%2Fcheck-in%2F{CHECKIN_TOKEN}", "/login?next=%2Fhost%2Fcheck-in%2F<redacted>"),
    (f"/login?next=%2fhost%2fcheck-in%2f{CHECKIN_TOKEN}&lang=en", "/login?next=%2fhost%2fcheck-in%2f<redacted>&lang=en"),
    (f"//feeds/{FEED_TOKEN}.ics", "//feeds/<redacted>.ics"),
    ("/account/calendar", "/account/calendar"),
    ("/slots/7/book", "/slots/7/book"),
    ("/feeds/", "/feeds/"),
])
def test_redact_hides_the_tokens_of_secret_urls(text, logged):
    assert app_logging.redact(text) == logged


def test_every_secret_path_prefix_is_redacted():
    from blueprints.core import security

    for prefix in security.TOKEN_PATH_PREFIXES:
        assert app_logging.redact(f"{prefix}{CHECKIN_TOKEN}") == f"{prefix}<redacted>"


def test_json_app_log_lines_show_secret_paths_redacted(app):
    with app.test_request_context(f"/host/check-in/{CHECKIN_TOKEN}", headers={"X-Request-ID": "rid-5"}):
        text = JsonFormatter().format(_record(msg="opened %s", args=(f"/feeds/{FEED_TOKEN}.ics",)))
    line = json.loads(text)
    assert line["path"] == "/host/check-in/<redacted>"
    assert line["message"] == "opened /feeds/<redacted>.ics"
    assert FEED_TOKEN not in text and CHECKIN_TOKEN not in text


def test_json_tracebacks_are_redacted_too():
    try:
        raise LookupError(f"no feed for /feeds/{FEED_TOKEN}.ics")
    except LookupError:
        text = JsonFormatter().format(_record(exc_info=sys.exc_info()))
    assert FEED_TOKEN not in text and "/feeds/<redacted>.ics" in json.loads(text)["exc"]


def _gunicorn_access_line(environ: dict) -> str:
    """What gunicorn writes for one request with gunicorn.conf.py: its access format, its atoms
    (gunicorn.glogging) and the JSON formatter the configuration names."""
    import runpy
    from datetime import timedelta
    from pathlib import Path
    from types import SimpleNamespace

    from gunicorn.config import Config

    conf = runpy.run_path(str(Path(__file__).resolve().parents[1] / "gunicorn.conf.py"))
    logger_class = conf["logger_class"]
    error_log = logging.getLogger("gunicorn.error")
    kept = list(error_log.handlers), error_log.propagate
    try:
        gunicorn_logger = logger_class(Config())
    finally:
        error_log.handlers[:], error_log.propagate = kept
    response = SimpleNamespace(status="200 OK", sent=1234, headers=[("X-Request-ID", "rid-7")])
    request = SimpleNamespace(headers=[("USER-AGENT", "DAVx5"), ("REFERER", environ.get("HTTP_REFERER", "-"))])
    base = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.2", "QUERY_STRING": ""}
    atoms = logger_class.atoms_wrapper_class(
        gunicorn_logger.atoms(response, request, {**base, **environ}, timedelta(milliseconds=12)))
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, conf["access_log_format"], (atoms,),
                               None)
    formatter = conf["logconfig_dict"]["formatters"]["json"]["()"]
    assert formatter == "blueprints.core.logging.JsonFormatter"
    return JsonFormatter().format(record)


@pytest.mark.parametrize(("environ", "path"), [
    ({"RAW_URI": f"/feeds/{FEED_TOKEN}.ics", "PATH_INFO": f"/feeds/{FEED_TOKEN}.ics"}, "/feeds/<redacted>.ics"),
    ({"RAW_URI": f"/host/check-in/{CHECKIN_TOKEN}", "PATH_INFO": f"/host/check-in/{CHECKIN_TOKEN}",
      "HTTP_REFERER": f"https://partyday.example.gov.cn/host/check-in/{CHECKIN_TOKEN}"}, "/host/check-in/<redacted>"),
    ({"RAW_URI": f"/login?next=%2Fhost%2Fcheck-in%2F{CHECKIN_TOKEN}", "PATH_INFO": "/login",
      "QUERY_STRING": f"next=%2Fhost%2Fcheck-in%2F{CHECKIN_TOKEN}"}, "/login"),
])
def test_the_gunicorn_access_log_shows_secret_paths_redacted(environ, path):
    text = _gunicorn_access_line(environ)
    assert FEED_TOKEN not in text and CHECKIN_TOKEN not in text
    line = json.loads(text)
    assert line["event"] == "access" and line["path"] == path and line["status"] == 200
    assert "<redacted>" in line["message"]


def test_text_logs_are_redacted_too(app, caplog):
    """LOG_FORMAT=text (development, tests): the app's own handler and the dev server's log."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    app_logging.install_redaction(handler)
    app.logger.addHandler(handler)
    try:
        app.logger.warning("calendar %s fetched", f"/feeds/{FEED_TOKEN}.ics")
    finally:
        app.logger.removeHandler(handler)
    assert stream.getvalue().strip() == "calendar /feeds/<redacted>.ics fetched"
    werkzeug_stream = io.StringIO()
    werkzeug_handler = logging.StreamHandler(werkzeug_stream)
    werkzeug_logger = logging.getLogger("werkzeug")  # create_app() gave it the filter (text format)
    level = werkzeug_logger.level
    werkzeug_logger.addHandler(werkzeug_handler)
    werkzeug_logger.setLevel(logging.INFO)
    try:
        werkzeug_logger.info('%s - - "%s" %s -', "127.0.0.1", f"GET /host/check-in/{CHECKIN_TOKEN} HTTP/1.1", 200)
    finally:
        werkzeug_logger.removeHandler(werkzeug_handler)
        werkzeug_logger.setLevel(level)
    assert werkzeug_stream.getvalue().strip() == '127.0.0.1 - - "GET /host/check-in/<redacted> HTTP/1.1" 200 -'


def test_readme_nginx_log_format_redacts_the_same_way():
    """The README's nginx sample logs ``$loggable_uri`` (a map over ``$request_uri``), never
    ``$request`` or ``$request_uri``; its regexes (PCRE, read here with Python's re) hide the tokens."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```nginx\n(.*?)```", readme, re.S) if "log_format" in b]
    [log_format] = re.findall(r"log_format\s+partyday\s+(.*?);", block, re.S)
    assert "$loggable_uri" in log_format
    assert "$request " not in log_format + " " and '$request"' not in log_format and "$request_uri" not in log_format
    assert "$http_referer" not in log_format
    [body] = re.findall(r"map \$request_uri \$loggable_uri \{\n(.*?)\n\}", block, re.S)
    rules = re.findall(r'"~([^"]+)"\s+"([^"]+)";', body)
    assert rules and re.search(r"default\s+\$request_uri;", body)

    def loggable(uri: str) -> str:
        for pattern, value in rules:
            match = re.search(pattern.replace("(?<", "(?P<"), uri)
            if match:
                return re.sub(r"\$\{(\w+)\}", lambda m: match.group(m.group(1)), value)
        return uri

    for uri in (f"/feeds/{FEED_TOKEN}.ics", f"/host/check-in/{CHECKIN_TOKEN}", f"/feeds/{FEED_TOKEN}.ics?a=1",
                f"/login?next=%2Fhost%2Fcheck-in%2F{CHECKIN_TOKEN}", "/account/calendar", "/slots/7"):
        assert loggable(uri) == app_logging.redact(uri), uri
