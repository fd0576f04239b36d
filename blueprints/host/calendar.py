"""The host's calendar (``/host/calendar``): every slot of their own stations in a week or month,
each with its fill and pending approvals, on the date grid of ``menu/calendar.py``."""
from __future__ import annotations

from blueprints.catalog.models import Slot
from blueprints.menu.calendar import CalendarView, Period, days_of, slots_by_day

from .services import slot_lines

WEEK_DAY_LIMIT = 12  # a host's own slots of one day (a station has a few a day)
MONTH_DAY_LIMIT = 4  # in the month view, then a link to the day's week


def host_slots(period: Period, station_ids: list[int], per_day: int | None = None) -> CalendarView:
    """Every slot of ``period`` at these stations (open, closed, cancelled, full), by day, each as
    the host pages' ``SlotLine`` (fill, pending approvals): three statements."""
    per_day = per_day or (WEEK_DAY_LIMIT if period.kind == "week" else MONTH_DAY_LIMIT)
    if not station_ids:
        return CalendarView(period, days_of(period, []))
    rows = slots_by_day(period, [Slot.station_id.in_(station_ids)], per_day)
    lines = {line.slot.id: line for line in slot_lines([slot for slot, _, _ in rows])}
    return CalendarView(period, days_of(period, rows, item=lambda slot: lines[slot.id]))


def pending_total(view: CalendarView) -> int:
    """Bookings awaiting approval on the slots a host's calendar shows."""
    return sum(line.pending_groups for day in view.days for line in day.slots)
