"""The one place that asks what time it is, so tests can freeze it."""
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def local_now() -> datetime:
    return now().astimezone(LOCAL_TZ)


def today() -> date:
    return local_now().date()


def to_local(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(LOCAL_TZ)


def local_datetime(day: date, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in Shanghai as an aware datetime."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL_TZ)


# -- periods of the Shanghai calendar (statistics, quotas, the audit trail's dates) ----------------

def month_of(day: date) -> tuple[date, date]:
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return start, end


def quarter_of(day: date) -> tuple[date, date]:
    first_month = 3 * ((day.month - 1) // 3) + 1
    start = date(day.year, first_month, 1)
    end_month = first_month + 3
    end = date(day.year + (end_month > 12), (end_month - 1) % 12 + 1, 1) - timedelta(days=1)
    return start, end


def year_of(day: date) -> tuple[date, date]:
    return date(day.year, 1, 1), date(day.year, 12, 31)


def local_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, day after end 00:00) in Shanghai, as aware datetimes."""
    return local_datetime(start, 0), local_datetime(end + timedelta(days=1), 0)
