"""Several gunicorn workers on one SQLite database without Redis (the embedded default scaled up
on one machine): each worker keeps its own cached pages, checked against the versions file they
share, so a booking answered by one worker shows at once on the pages every other worker serves."""
from __future__ import annotations

import re

import pytest
import requests

from . import factories
from .ops_support import Gunicorn, Secretary, flask_db_upgrade, make_app, seed_secretaries

pytestmark = pytest.mark.slow

WORKERS = 3
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def app_ctx():
    """This test makes its own database and server; no per-test app of conftest."""
    yield


def _remaining(server, slot_id: int) -> tuple[set[str], set[int]]:
    """The places left shown by the slot page, the menu and the live element, over many requests
    (so that every worker answers some), and the workers that answered."""
    from concurrent.futures import ThreadPoolExecutor

    targets = [(f"/slots/{slot_id}", {}), ("/", {}), (f"/slots/{slot_id}/places", {"HX-Request": "true"})] * 6

    def fetch(target) -> str:
        path, headers = target
        return requests.get(server.base_url + path, headers=headers, timeout=20).text

    # Several at a time: a sync worker busy with one cannot accept the next, so sequential
    # requests on a fast machine could all be taken by the same worker.
    seen: set[str] = set()
    with ThreadPoolExecutor(max_workers=WORKERS * 2) as pool:
        for html in pool.map(fetch, targets):
            seen |= set(re.findall(rf'id="places-{slot_id}"[^>]*data-remaining="(\d+)"', html))
            seen |= set(re.findall(rf'data-slot-id="{slot_id}">.*?data-remaining="(\d+)"', html, re.S))
    return seen, server.served_pids()


def test_a_booking_in_one_worker_shows_at_once_in_every_other_workers_cache(tmp_path):
    url = f"sqlite:///{tmp_path / 'workers.sqlite3'}"
    flask_db_upgrade(url)
    app = make_app(url)
    with app.app_context():
        from blueprints.core.extensions import db

        slot_id = factories.create_slot(capacity=25).id
        [username] = seed_secretaries(1, PASSWORD, prefix="workers")
        db.session.remove()
        db.engine.dispose()
    server = Gunicorn(url, tmp_path, "sqlite", workers=WORKERS,
                      CACHE_VERSIONS_FILE=tmp_path / "versions.bin").start().wait_ready().wait_every_worker(WORKERS)
    try:
        seen, pids = _remaining(server, slot_id)
        assert seen == {"25"}
        assert len(pids) >= 2, "the requests reached only one worker"
        secretary = Secretary(username, PASSWORD)
        assert secretary.login(server.base_url).status_code == 302
        assert secretary.open_slot(server.base_url, slot_id).status_code == 200
        assert secretary.book(server.base_url, slot_id, 7).status_code == 302
        seen, _ = _remaining(server, slot_id)
        assert seen == {"18"}
        assert (tmp_path / "versions.bin").exists()
    finally:
        server.stop()
