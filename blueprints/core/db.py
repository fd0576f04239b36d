"""Database helpers shared by every feature: UTC timestamps, SQLite tuning, row locks."""
from __future__ import annotations

import contextvars
import functools
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.types import DateTime, TypeDecorator

from .extensions import db

SQLITE_BUSY_TIMEOUT_MS = 5000
POSTGRES_LOCK_TIMEOUT = "5s"

_sqlite_begin = contextvars.ContextVar("sqlite_begin", default="BEGIN")


class Busy(Exception):
    """A lock could not be had in time; the user should simply retry."""


class UTCDateTime(TypeDecorator):
    """Stores aware datetimes as UTC and always returns them aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def as_stored(column):
    """``column`` as the driver returns it, without the model type's conversion (UTC-aware
    datetimes, enums): for values that are only compared, never shown — reading them costs
    a third as much."""
    if isinstance(column.type, (UTCDateTime, sa.Enum)):
        return sa.type_coerce(column, sa.String()).label(None)
    return column


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection, connection_record):
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    # Let SQLAlchemy, not pysqlite, emit BEGIN, so that we can ask for BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin_statement(conn):
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_sqlite_begin.get())


def is_sqlite() -> bool:
    return db.engine.dialect.name == "sqlite"


def start_write_transaction() -> None:
    """Start a fresh transaction that serialises with other writers.

    On SQLite this is ``BEGIN IMMEDIATE`` (the database-wide write lock, waited for up to the
    busy timeout). On PostgreSQL it only bounds how long row locks taken afterwards may wait.
    Anything not yet committed in the session is rolled back, so call it before changing anything.
    """
    db.session.rollback()
    if is_sqlite():
        token = _sqlite_begin.set("BEGIN IMMEDIATE")
        try:
            db.session.connection()
        except OperationalError as exc:
            db.session.rollback()
            raise Busy() from exc
        finally:
            _sqlite_begin.reset(token)
    else:
        db.session.execute(db.text(f"SET LOCAL lock_timeout = '{POSTGRES_LOCK_TIMEOUT}'"))


def id_of(instance) -> int:
    """The primary key of a persistent ``instance`` without loading it again after a commit or
    rollback expired it (the user who acts, after the booking's unlocked first look)."""
    identity = sa.inspect(instance).identity
    return identity[0] if identity is not None else instance.id


def built_once(build):
    """``build()`` once per process, for the statements of the paths every request takes (menu
    cards, places, the booking POST, feeds): building and keying a select costs about a
    millisecond of Python each time, running a built one a fraction of it. What varies per call
    goes in as bind parameters (``sa.bindparam``, ``expanding=True`` for lists)."""
    return functools.cache(build)


@functools.lru_cache(maxsize=256)
def _for_update(statement, of, key_share: bool):
    return statement.with_for_update(of=of, key_share=key_share).execution_options(populate_existing=True)


def lock_rows(statement, of=None, key_share: bool = False, parameters: dict | None = None):
    """Run a SELECT with FOR UPDATE [OF ``of``] (a no-op on SQLite, where the transaction already
    holds the write lock); timeouts become :class:`Busy`.

    ``key_share`` takes FOR NO KEY UPDATE instead: it serialises with other lockers of the row but
    not with inserts of rows that refer to it (their foreign key check takes FOR KEY SHARE), so a
    row many others point at can serve as a lock without deadlocking those inserts.
    A statement made by :func:`built_once` (with ``parameters``) keeps its locking variant too."""
    try:
        return db.session.execute(_for_update(statement, of, key_share), parameters)
    except OperationalError as exc:
        db.session.rollback()
        raise Busy() from exc


def utcnow_default() -> datetime:
    from .clock import now

    return now()


def like_pattern(text: str) -> str:
    """A LIKE pattern for "contains ``text``": the %, _ and \\ a user types match themselves."""
    escaped = text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def contains(text: str, *columns):
    """Any of ``columns`` contains ``text`` literally, case-insensitively: the one search rule
    of every list page and suggestion box (callers bound the text's length first)."""
    pattern = like_pattern(text)
    return sa.or_(*(column.ilike(pattern, escape="\\") for column in columns))
