"""The outbox of work to do after a commit: one row per job, written in the transaction that causes it."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from blueprints.core.db import UTCDateTime, utcnow_default
from blueprints.core.extensions import db

# A job is open until it is done or given up; only open jobs are ever looked for.
OPEN = sa.text("done_at IS NULL AND failed_at IS NULL")


class Job(db.Model):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(40))
    # What the job is for, e.g. ``mail:notification:17``: one job per event, whoever enqueues it.
    key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    payload: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow_default)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow_default)
    attempts: Mapped[int] = mapped_column(default=0)
    # A consumer holds a job until then; one killed meanwhile lets it go when the lease ends.
    claimed_until: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    done_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    failed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(sa.String(500), default="")

    __table_args__ = (
        sa.CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        sa.Index("ix_jobs_open_run_after", "run_after", sqlite_where=OPEN, postgresql_where=OPEN),
    )

    @property
    def is_open(self) -> bool:
        return self.done_at is None and self.failed_at is None

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.key} attempts={self.attempts}>"
