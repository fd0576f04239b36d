"""``flask jobs run`` (the consumer) and ``flask jobs status``; the jobs have no pages."""
from __future__ import annotations

import click
from flask import Blueprint, current_app

from . import queue
from .consumer import PERIODIC, huey_for, sweep_once

bp = Blueprint("jobs", __name__, cli_group="jobs")


@bp.record_once
def _report_on_healthz(state) -> None:
    state.app.extensions["health_jobs_backlog"] = queue.backlog


@bp.cli.command("run")
@click.option("--workers", default=2, show_default=True, help="Worker threads.")
@click.option("--once", is_flag=True, help="Do the minute's periodic work and every due job here, then stop.")
def run_command(workers: int, once: bool):
    """Run the consumer: jobs as they are committed, and the sweep every minute."""
    if once:
        for function in PERIODIC.values():
            function()
        click.echo(f"{queue.run_due()} jobs done")
        return
    huey = huey_for(current_app._get_current_object())["huey"]
    sweep_once()  # at once, not at the next minute: what a stopped consumer left is due now
    # An idle worker polls the SQLite queue at least every second (Redis: it blocks until a job comes).
    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=True, check_worker_health=True,
                                    max_delay=1.0)
    click.echo(f"jobs consumer: {workers} workers, queue in {type(huey.storage).__name__}", err=True)
    consumer.run()


@bp.cli.command("status")
def status_command():
    """The backlog, as /healthz reports it."""
    for name, value in queue.backlog().items():
        click.echo(f"{name}: {value}")
