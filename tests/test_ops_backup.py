"""Backups that a restore proves: ``flask backup sqlite`` (online, while bookings are being
written) and ``pg_dump -Fc`` / ``pg_restore`` as the README says, each compared with its source
by row counts and a checksum of the bookings (``flask backup summary``)."""
from __future__ import annotations

import shutil
import subprocess
import threading

import pytest
import sqlalchemy as sa

from blueprints.core.backup import sqlite_backup, summary

from . import factories
from .ops_support import flask_cli, flask_db_upgrade, fresh_postgres_database, invariant_violations, libpq_url, make_app


@pytest.fixture(autouse=True)
def app_ctx():
    """These tests make their own databases; no per-test app of conftest."""
    yield


def _populate(url: str, bookings: int = 12) -> None:
    """A station, slots and bookings (with their events) in the database at ``url``."""
    app = make_app(url)
    with app.app_context():
        from blueprints.core.extensions import db

        package = factories.create_package()
        slots = [factories.create_slot(package=package, capacity=100) for _ in range(3)]
        for n in range(bookings):
            factories.create_booking(slot=slots[n % 3], headcount=1 + n % 5, contact_phone=f"1390000{n:04d}")
        db.session.remove()
        db.engine.dispose()


def _summary(url: str) -> dict:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        result = summary(connection)
        result["violations"] = {k: v for k, v in invariant_violations(connection).items() if v}
        if sa.inspect(connection).has_table("alembic_version"):
            result["alembic_version"] = connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
    engine.dispose()
    return result


# -- SQLite ---------------------------------------------------------------------------------------

def test_flask_backup_sqlite_round_trips_a_database_with_bookings(tmp_path):
    source = tmp_path / "live.sqlite3"
    url = f"sqlite:///{source}"
    flask_db_upgrade(url)
    _populate(url)

    dest = tmp_path / "backups" / "partyday.sqlite3"
    # The operator's command line, in a process of its own.
    result = flask_cli("backup", "sqlite", str(dest), database_url=url)
    assert "backed up" in result.stdout

    # Restore as the README says: the backup file becomes the database file.
    restored = tmp_path / "restored.sqlite3"
    shutil.copyfile(dest, restored)
    before, after = _summary(url), _summary(f"sqlite:///{restored}")
    assert after == before
    assert after["counts"]["bookings"] == 12 and after["counts"]["booking_events"] == 12
    assert after["alembic_version"]
    # The restored database serves the app, and `flask backup summary` says the same.
    summary_output = make_app(f"sqlite:///{restored}").test_cli_runner().invoke(args=["backup", "summary"]).output
    assert f"bookings_sha256\t{before['bookings_sha256']}" in summary_output
    assert "bookings\t12" in summary_output
    client = make_app(f"sqlite:///{restored}").test_client()
    assert client.get("/healthz").get_json()["database"] == "ok"


def test_sqlite_backup_while_bookings_are_written_is_a_consistent_snapshot(tmp_path):
    """The online backup copies one snapshot while another connection keeps writing (WAL):
    every booking in the copy has its event, and the copy is complete and checked."""
    source = tmp_path / "busy.sqlite3"
    url = f"sqlite:///{source}"
    flask_db_upgrade(url)
    _populate(url, bookings=3)

    stop = threading.Event()
    written = []

    def writer():
        app = make_app(url)
        with app.app_context():
            from blueprints.catalog.models import Slot
            from blueprints.core.extensions import db

            slot = db.session.scalars(sa.select(Slot)).first()
            while not stop.is_set():
                factories.create_booking(slot=slot, headcount=1)  # booking + event in one commit
                written.append(1)
            db.session.remove()
            db.engine.dispose()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 20:
            threading.Event().wait(0.01)
        copies = [sqlite_backup(source, tmp_path / f"copy{n}.sqlite3") for n in range(3)]
    finally:
        stop.set()
        thread.join()
    counts = []
    for copy in copies:
        copied = _summary(f"sqlite:///{copy}")
        assert copied["violations"] == {}
        assert copied["counts"]["bookings"] == copied["counts"]["booking_events"]
        counts.append(copied["counts"]["bookings"])
        assert not copy.with_name(copy.name + "-wal").exists()  # one self-contained file
    assert counts == sorted(counts) and counts[-1] <= _summary(url)["counts"]["bookings"]
    assert not list(tmp_path.glob(".*.partial"))


def test_flask_backup_sqlite_refuses_to_overwrite_without_force_and_on_postgresql(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    flask_db_upgrade(url)
    dest = tmp_path / "backup.sqlite3"
    dest.write_text("an older backup")
    runner = make_app(url).test_cli_runner()
    refused = runner.invoke(args=["backup", "sqlite", str(dest)])
    assert refused.exit_code != 0 and "--force" in refused.output
    assert dest.read_text() == "an older backup"
    assert runner.invoke(args=["backup", "sqlite", "--force", str(dest)]).exit_code == 0
    assert dest.read_bytes().startswith(b"SQLite format 3")

    app = make_app("postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = app.test_cli_runner().invoke(args=["backup", "sqlite", str(tmp_path / "x.sqlite3")])
    assert result.exit_code != 0 and "pg_dump" in result.output


# -- PostgreSQL -----------------------------------------------------------------------------------

def test_pg_dump_and_pg_restore_round_trip_a_database_with_bookings(tmp_path):
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump / pg_restore not installed (apt-get install postgresql-client)")
    with fresh_postgres_database("ops_backup_src") as source, fresh_postgres_database("ops_backup_dst") as target:
        flask_db_upgrade(source)
        _populate(source)
        dump = tmp_path / "partyday.dump"
        # The README's commands, verbatim but for the URLs.
        subprocess.run(["pg_dump", "-Fc", "--no-owner", "-f", str(dump), libpq_url(source)], check=True, timeout=120)
        subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "-d", libpq_url(target), str(dump)],
                       check=True, timeout=120)
        before, after = _summary(source), _summary(target)
        assert after == before
        assert after["counts"]["bookings"] == 12 and after["alembic_version"]
        # Sequences came along: the restored database takes new bookings.
        app = make_app(target)
        with app.app_context():
            from blueprints.core.extensions import db

            factories.create_booking()
            db.session.remove()
            db.engine.dispose()
        assert _summary(target)["counts"]["bookings"] == 13
