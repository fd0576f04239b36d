"""Backups: ``flask --app app backup sqlite DEST`` (online, safe while the app runs) and
``flask --app app backup summary`` (row counts and a bookings checksum, to compare a restored
database with its source). PostgreSQL is backed up with ``pg_dump -Fc`` (see the README).
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from pathlib import Path

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from .extensions import db

cli = AppGroup("backup", help="Back up the database and check a restored copy.")


class BackupError(click.ClickException):
    pass


def sqlite_backup(source: str | Path, dest: str | Path) -> Path:
    """Copy the SQLite database ``source`` to ``dest`` with SQLite's online backup API.

    The whole copy is one step (``pages=-1``), so it reads one consistent snapshot: in WAL mode
    readers do not block writers, so the running app keeps booking meanwhile. (Copying in
    several steps would restart whenever another connection writes, and could never finish
    under steady traffic.) The copy is written next to ``dest``, checked with
    ``PRAGMA integrity_check``, switched to a rollback journal so that it is one self-contained
    file, and only then renamed into place: ``dest`` is either the old file or a complete backup.
    """
    source, dest = Path(source), Path(dest)
    if not source.exists():
        raise BackupError(f"no database at {source}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            out = sqlite3.connect(tmp)
            try:
                src.backup(out, pages=-1)
                out.execute("PRAGMA journal_mode=DELETE")
                result = out.execute("PRAGMA integrity_check").fetchone()[0]
                if result != "ok":
                    raise BackupError(f"the copy failed its integrity check: {result}")
            finally:
                out.close()
        finally:
            src.close()
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def summary(connection: sa.Connection) -> dict:
    """Row counts of every table of the schema and a checksum of the bookings, for comparing a
    restored database with its source (same numbers = same data, as far as bookings go)."""
    counts = {}
    for table in db.metadata.sorted_tables:
        if sa.inspect(connection).has_table(table.name):
            counts[table.name] = connection.scalar(sa.select(sa.func.count()).select_from(table))
    bookings = db.metadata.tables["bookings"]
    columns = ("id", "slot_id", "organisation_id", "headcount", "status", "revision", "contact_phone")
    digest = hashlib.sha256()
    rows = connection.execute(
        sa.select(*(bookings.c[name] for name in columns)).order_by(bookings.c.id)
    )
    for row in rows:
        digest.update(repr(tuple(getattr(value, "value", value) for value in row)).encode())
        digest.update(b"\n")
    return {"counts": counts, "bookings_sha256": digest.hexdigest()}


@cli.command("sqlite")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
def sqlite_command(dest: Path, force: bool):
    """Online backup of the SQLite database to DEST (safe while the app is running)."""
    url = db.engine.url
    if url.get_backend_name() != "sqlite":
        raise BackupError(
            f"the database is {url.get_backend_name()}, not SQLite: use pg_dump -Fc (see the README)"
        )
    if dest.exists() and not force:
        raise BackupError(f"{dest} exists; give --force to replace it")
    source = Path(url.database)
    sqlite_backup(source, dest)
    click.echo(f"backed up {source} to {dest} ({dest.stat().st_size} bytes)")


@cli.command("summary")
def summary_command():
    """Row counts and a checksum of the bookings (compare before and after a restore)."""
    with db.engine.connect() as connection:
        result = summary(connection)
    for name, count in sorted(result["counts"].items()):
        click.echo(f"{name}\t{count}")
    click.echo(f"bookings_sha256\t{result['bookings_sha256']}")
