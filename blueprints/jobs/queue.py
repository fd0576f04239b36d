"""Durable jobs: work a change causes outside its transaction (mail, reminders, settlement).

A job is a row of ``jobs`` (the outbox), inserted in the transaction of the change that causes
it: a commit always has its jobs and a rollback never does. ``flask jobs run`` (huey, see
``consumer.py``) runs them: after each commit the new jobs are handed to it at once, and a sweep
every minute picks up whatever is due and open (a hand-over that was lost, a consumer killed
mid-job, a retry whose backoff has passed).

Running a job claims it first (a lease: ``claimed_until``), so several consumers never run one
job at a time; its handler's own writes and ``done_at`` commit together, so a job whose effects
are rows is done exactly once. A handler that raises is retried with backoff and given up
after ``MAX_ATTEMPTS`` with a log line.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.orm import Session

from blueprints.core import clock
from blueprints.core.db import start_write_transaction
from blueprints.core.extensions import db

from .models import OPEN, Job

log = logging.getLogger(__name__)

HANDLERS: dict[str, Callable[[dict], None]] = {}
WRITES: dict[str, bool] = {}
LEASE_SECONDS = 300  # JOBS_LEASE_SECONDS: longer than any job takes (mail gives up on a server after 10 s)
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)  # then 1, 2, 4 … 32 minutes: about an hour in all
SWEEP_BATCH = 200
_ENQUEUED = "jobs_enqueued"  # session.info: ids of the jobs this transaction inserted


def handler(kind: str, *, writes: bool = True):
    """Register the function that does jobs of ``kind``; it gets the job's payload. A handler that
    ``writes`` runs in the transaction that marks its job done (its rows and the mark commit
    together: exactly once); one that does not (mail) holds no write lock while it works."""
    def register(function: Callable[[dict], None]):
        HANDLERS[kind] = function
        WRITES[kind] = writes
        return function
    return register


def enqueue(kind: str, key: str, payload: dict, *, run_after=None) -> int | None:
    """Add a job to the current transaction; its ``key`` names the event it is for, and a second
    job for the same event is not added (None). Runs when the transaction commits."""
    if kind not in HANDLERS:
        raise ValueError(f"no handler for jobs of kind {kind!r}")
    values = {"kind": kind, "key": key, "payload": payload, "run_after": run_after or clock.now(),
              "attempts": 0, "last_error": "", "created_at": clock.now()}
    statement = _insert_ignoring_duplicates(values).returning(Job.id)
    job_id = db.session.execute(statement).scalar_one_or_none()
    if job_id is not None:
        db.session.info.setdefault(_ENQUEUED, []).append(job_id)
    return job_id


def _insert_ignoring_duplicates(values: dict):
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(Job).values(**values).on_conflict_do_nothing(index_elements=[Job.key])


# -- running --------------------------------------------------------------------------------

def run(job_id: int) -> bool:
    """Run one job if it is due, open and nobody holds it; True when this call did it."""
    if not _claim(job_id):
        return False
    try:
        kind, payload = db.session.execute(sa.select(Job.kind, Job.payload).where(Job.id == job_id)).one()
        if WRITES[kind]:
            start_write_transaction()  # SQLite: the write lock first, so the handler's writes never wait in vain
            HANDLERS[kind](payload)
        else:
            HANDLERS[kind](payload)
            start_write_transaction()
        job = db.session.get(Job, job_id, populate_existing=True)
        job.done_at = clock.now()
        job.claimed_until = None
        db.session.commit()
    except Exception as exc:  # noqa: BLE001 - any failure is retried, then given up
        db.session.rollback()
        _failed(job_id, exc)
        return False
    return True


def _claim(job_id: int) -> bool:
    start_write_transaction()
    now = clock.now()
    claimed = db.session.execute(
        sa.update(Job)
        .where(Job.id == job_id, OPEN, Job.run_after <= now,
               sa.or_(Job.claimed_until.is_(None), Job.claimed_until < now))
        .values(claimed_until=now + _lease(), attempts=Job.attempts + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return claimed == 1


def _lease() -> timedelta:
    return timedelta(seconds=current_app.config.get("JOBS_LEASE_SECONDS", LEASE_SECONDS))


def _failed(job_id: int, exc: Exception) -> None:
    start_write_transaction()
    job = db.session.get(Job, job_id, populate_existing=True)
    job.last_error = f"{type(exc).__name__}: {exc}"[:500]
    job.claimed_until = None
    if job.attempts >= MAX_ATTEMPTS:
        job.failed_at = clock.now()
        log.error("job %s (%s) given up after %d attempts: %s", job.id, job.key, job.attempts, job.last_error)
    else:
        job.run_after = clock.now() + retry_delay(job.attempts)
        log.warning("job %s (%s) failed (attempt %d of %d), retried after %s: %s", job.id, job.key,
                    job.attempts, MAX_ATTEMPTS, job.run_after.isoformat(timespec="seconds"), job.last_error)
    db.session.commit()


def retry_delay(attempts: int) -> timedelta:
    """Wait before the next attempt after ``attempts`` failed ones: doubling from FIRST_RETRY."""
    return FIRST_RETRY * (2 ** max(attempts - 1, 0))


def due(limit: int = SWEEP_BATCH) -> list[int]:
    """Open jobs that may run now, oldest first (the sweep hands them to the consumer)."""
    now = clock.now()
    return list(db.session.scalars(
        sa.select(Job.id).where(OPEN, Job.run_after <= now,
                                sa.or_(Job.claimed_until.is_(None), Job.claimed_until < now))
        .order_by(Job.run_after, Job.id).limit(limit)))


def run_due(limit: int = SWEEP_BATCH) -> int:
    """Run what is due here and now (``flask jobs run --once``, tests); how many were done."""
    return sum(run(job_id) for job_id in due(limit))


def backlog() -> dict:
    """For /healthz: jobs due and not done, how long the oldest of them has waited (seconds),
    jobs scheduled for later (reminders), and jobs given up."""
    now = clock.now()
    due_count, oldest = db.session.execute(
        sa.select(sa.func.count(), sa.func.min(Job.run_after)).where(OPEN, Job.run_after <= now)).one()
    scheduled = db.session.scalar(sa.select(sa.func.count()).where(OPEN, Job.run_after > now))
    given_up = db.session.scalar(sa.select(sa.func.count()).where(Job.failed_at.is_not(None)))
    waited = (now - _aware(oldest)).total_seconds() if oldest else 0
    return {"due": due_count, "oldest_due_seconds": round(max(waited, 0)), "scheduled": scheduled,
            "given_up": given_up}


def _aware(moment):
    """SQLite hands back naive UTC from aggregate functions (no column type to convert it)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# -- handing new jobs to the consumer after each commit ---------------------------------------

@sa.event.listens_for(Session, "after_commit")
def _hand_over_after_commit(session) -> None:
    job_ids = session.info.pop(_ENQUEUED, None)
    if job_ids:
        hand_over(current_app._get_current_object(), job_ids)


@sa.event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session) -> None:
    session.info.pop(_ENQUEUED, None)


def hand_over(app: Flask, job_ids: Iterable[int]) -> None:
    """Tell the consumer about new jobs through huey's queue, so they run at once. Nothing is lost
    if this fails (or ``JOBS_HAND_OVER`` is off, as in tests): the sweep finds them within a minute."""
    if not app.config.get("JOBS_HAND_OVER", True):
        return
    job_ids = list(job_ids)
    try:
        from .consumer import run_job_task

        run_job = run_job_task(app)
        for job_id in job_ids:
            run_job(job_id)
    except Exception as exc:  # noqa: BLE001 - the commit stands; the sweep will find the jobs
        log.warning("could not hand %d job(s) to the queue, the sweep will: %s", len(job_ids), exc)
