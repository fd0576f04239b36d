"""Imports every model so that SQLAlchemy and Alembic see the whole schema."""
from blueprints.accounts.models import Organisation, OrganisationKind, Role, User  # noqa: F401
from blueprints.booking.models import (  # noqa: F401
    ENDED_STATUSES,
    HOLDING_STATUSES,
    Booking,
    BookingEvent,
    BookingStatus,
    Notification,
)
from blueprints.catalog.models import (  # noqa: F401
    Campaign,
    Category,
    Package,
    Slot,
    SlotEvent,
    SlotStatus,
    Station,
    package_stations,
    station_hosts,
)
from blueprints.feeds.models import FeedKind, FeedToken  # noqa: F401
from blueprints.jobs.models import Job  # noqa: F401
from blueprints.quotas.models import Quota, QuotaPeriod  # noqa: F401
