"""The consumer: huey runs the jobs of the outbox (``queue.py``) in worker threads.

Huey carries only job ids, as a fast hand-over after each commit, and runs the sweep every
minute; what must not be lost stays in the ``jobs`` table, so losing huey's queue (a consumer
killed mid-task, a Redis restart) loses nothing. Storage: Redis when ``REDIS_URL`` is set (every
instance and consumer share it), otherwise a SQLite file under instance/ (one machine).
"""
from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, current_app
from huey import RedisHuey, SqliteHuey, crontab

from blueprints.core.extensions import db

from . import queue

log = logging.getLogger(__name__)

# Periodic work besides the sweep, registered by the features: name -> function(now) run each minute.
PERIODIC: dict[str, callable] = {}


def every_minute(name: str):
    def register(function):
        PERIODIC[name] = function
        return function
    return register


def huey_for(app: Flask):
    """The app's huey instance and its tasks, made once per app."""
    tasks = app.extensions.get("huey")
    if tasks is None:
        tasks = app.extensions["huey"] = _make(app)
    return tasks


def run_job_task(app: Flask):
    return huey_for(app)["run_job"]


def _make(app: Flask) -> dict:
    if app.config.get("REDIS_URL"):
        huey = RedisHuey("partyday-jobs", url=app.config["REDIS_URL"], results=False)
    else:
        path = Path(app.config.get("JOBS_QUEUE_FILE") or Path(app.instance_path) / "jobs-queue.sqlite3")
        path.parent.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey("partyday-jobs", filename=str(path), results=False)

    @huey.task(name="run_job")
    def run_job(job_id: int) -> None:
        with app.app_context():
            try:
                queue.run(job_id)
            finally:
                db.session.remove()

    @huey.periodic_task(crontab(minute="*"), name="sweep")
    def sweep() -> None:
        with app.app_context():
            try:
                sweep_once()
            finally:
                db.session.remove()

    return {"huey": huey, "run_job": run_job, "sweep": sweep}


def sweep_once() -> int:
    """The minute's work: the periodic jobs of the features, then every due job handed to the
    workers (those already running are claimed, so handing them over again does nothing)."""
    for name, function in PERIODIC.items():
        try:
            function()
        except Exception:  # noqa: BLE001 - one feature's failure must not stop the others
            db.session.rollback()
            log.exception("periodic job %s failed", name)
    job_ids = queue.due()
    db.session.rollback()
    queue.hand_over(current_app._get_current_object(), job_ids)
    return len(job_ids)
