"""gunicorn configuration: ``.venv/bin/gunicorn -c gunicorn.conf.py`` (see README, "Production").

Everything can be set from the environment:
  PORT (5000), HOST (127.0.0.1; 0.0.0.0 in a container), WEB_CONCURRENCY (worker processes,
  default 2 x CPUs + 1, at most 8), GUNICORN_THREADS (1 = sync workers), GUNICORN_TIMEOUT (30 s),
  GUNICORN_MAX_REQUESTS (20000), FORWARDED_ALLOW_IPS (gunicorn's own, 127.0.0.1,::1),
  LOG_LEVEL (info), ACCESS_LOG (1; 0 turns the access log off). Any other gunicorn flag via GUNICORN_CMD_ARGS or the command line.
"""
import multiprocessing
import os

from gunicorn import glogging

wsgi_app = "wsgi:app"

bind = [f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"]

# Sync workers: one request per process at a time, each with its own database connection.
# A booking holds a row lock for a few milliseconds, so a handful of processes per CPU keeps
# the CPUs busy while others wait on PostgreSQL. Slow clients are nginx's job (it buffers).
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))  # > 1 switches to the gthread worker

# preload_app stays off: each worker imports the app after the fork, so it creates its own
# SQLAlchemy engine (connection pool) and Redis client; nothing opened in the master is ever
# shared between processes, where two workers could talk over one socket. The cost is a little
# more memory and a slower boot; the gain is also that `kill -HUP` reloads new code.
preload_app = False

# A worker silent for longer than this is killed and replaced (a stuck request); far above
# anything the app should take.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# SIGTERM / deploys: workers finish the requests they are serving, up to this long.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Idle keep-alive connections from the proxy, for the gthread worker (sync workers close each
# connection after its response); keep it below nginx's upstream keepalive_timeout.
keepalive = 5
# Recycle workers now and then, so a slow leak cannot grow for ever. Rarely, and spread widely:
# a worker takes about two CPU-seconds to start, and under even load workers reach the limit
# together; with 1,000 ± 10 % all five restarted within two seconds and calendar revalidations
# waited 2-4 s (p90) instead of 30 ms (bench/RESULTS.md).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = max_requests // 2
# The heartbeat file on tmpfs: a full or slow disk must not get healthy workers killed.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Several instances on one machine must not fight over one control socket.
control_socket_disable = True

# Request line limits (bytes): generous for our URLs, small enough to refuse junk.
limit_request_line = 8190
limit_request_fields = 100


# -- logs: JSON lines on stderr, the access log with the request id -----------------------------

class _RawAtoms(glogging.SafeAtoms):
    """gunicorn escapes quotes in atoms for its text format; JSON escapes for itself."""

    def __init__(self, atoms):
        dict.__init__(self, atoms)


class JsonLogger(glogging.Logger):
    atoms_wrapper_class = _RawAtoms


logger_class = JsonLogger
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# The message of each access line (the JSON line also carries each field separately). The request
# line holds secret URLs (/feeds/<token>.ics, /host/check-in/<token>): the JSON formatter redacts
# the whole line (blueprints.core.logging.redact), message and fields alike.
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "blueprints.core.logging.JsonFormatter"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    },
    "root": {"level": loglevel.upper(), "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {
            "level": "INFO" if os.environ.get("ACCESS_LOG", "1").lower() not in {"0", "off", "false", "no"} else "WARNING",
            "handlers": ["stderr"],
            "propagate": False,
        },
        "alembic": {"level": "WARNING"},  # its plugin set-up chatter at every worker boot
    },
}
