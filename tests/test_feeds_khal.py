"""A real calendar client imports our feed: khal (Debian package ``khal``), non-interactively."""
from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta

import pytest

from blueprints.booking.models import BookingStatus
from blueprints.core import clock
from blueprints.feeds import services

from . import factories as f

KHAL = shutil.which("khal")
pytestmark = pytest.mark.skipif(KHAL is None, reason="khal is not installed (apt-get install khal); .ci/run installs it")

CONFIG = """[calendars]
[[partyday]]
path = {root}/cal
type = calendar
[locale]
timeformat = %H:%M
dateformat = %Y-%m-%d
longdateformat = %Y-%m-%d
datetimeformat = %Y-%m-%d %H:%M
longdatetimeformat = %Y-%m-%d %H:%M
local_timezone = {tz}
default_timezone = {tz}
[default]
default_calendar = partyday
[sqlite]
path = {root}/khal.db
"""


def khal(root, *args):
    result = subprocess.run([KHAL, "-c", str(root / "config"), *args], capture_output=True, text=True,
                            timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(root), "LANG": "C.UTF-8"})
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("tz,confirmed_time,cancelled_time", [
    ("Asia/Shanghai", "2026-11-30 10:00 2026-11-30 12:00", "2026-12-02 14:30 2026-12-02 16:00"),
    # Seen from Berlin (UTC+1 in winter) the same events sit 7 hours earlier.
    ("Europe/Berlin", "2026-11-30 03:00 2026-11-30 05:00", "2026-12-02 07:30 2026-12-02 09:00"),
])
def test_khal_imports_the_organisation_feed_at_the_right_local_times(client, frozen_now, tmp_path, tz,
                                                                     confirmed_time, cancelled_time):
    station = f.create_station(name="虹桥火车站党群服务站")
    package = f.create_package(title="进博·志愿服务包", stations=[station])
    secretary = f.create_secretary()
    day = datetime(2026, 11, 30, 10, 0, tzinfo=clock.LOCAL_TZ)
    confirmed = f.create_booking(organisation=secretary.organisation,
                                 slot=f.create_slot(package=package, station=station, starts_at=day))
    later = datetime(2026, 12, 2, 14, 30, tzinfo=clock.LOCAL_TZ)
    cancelled = f.create_booking(organisation=secretary.organisation, status=BookingStatus.CANCELLED,
                                 slot=f.create_slot(package=package, station=station, starts_at=later,
                                                    ends_at=later + timedelta(minutes=90)))
    [sub] = services.subscriptions_for(secretary)
    body = client.get(f"/feeds/{sub.token}.ics").get_data()
    (tmp_path / "cal").mkdir()
    (tmp_path / "config").write_text(CONFIG.format(root=tmp_path, tz=tz))
    (tmp_path / "feed.ics").write_bytes(body)

    khal(tmp_path, "import", "--batch", "-a", "partyday", str(tmp_path / "feed.ics"))
    listing = khal(tmp_path, "list", "--format", "{start} {end} {title} {cancelled}", "2026-11-29", "5d")

    lines = [line for line in listing.splitlines() if "进博" in line]
    assert len(lines) == 2, listing
    assert lines[0].startswith(confirmed_time) and "进博·志愿服务包 · 虹桥火车站党群服务站" in lines[0]
    assert "CANCELLED" not in lines[0]
    assert lines[1].startswith(cancelled_time) and "CANCELLED" in lines[1]
    stored = sorted(p.name for p in (tmp_path / "cal").iterdir())
    assert stored == sorted(f"booking-{b.id}@partyday.local.ics" for b in (confirmed, cancelled))
