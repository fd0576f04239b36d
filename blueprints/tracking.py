"""Which scopes of the change-tracking layer (``core/changes.py``) each model's rows show in.

Every flushed row adds the version scopes its change makes stale; they are bumped after the
commit. Registered here, above the features, so that core knows none of them and the whole map
reads in one place. ``app.py`` imports it with the models.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm.util import identity_key

from blueprints.accounts.models import Organisation, User
from blueprints.booking.models import Booking, Notification
from blueprints.catalog.models import Campaign, Package, Slot, Station
from blueprints.core import changes
from blueprints.core.changes import old_and_new, really_changed, related_id
from blueprints.feeds.models import FeedToken

# Of a user, only what decides which feeds their tokens open (not logins, passwords, sessions).
USER_ATTRIBUTES = frozenset({"active", "role", "organisation_id", "organisation", "stations", "display_name"})


def _stations_and_packages_of_slots(session, slot_ids) -> list[str]:
    """For bookings whose slot is not loaded."""
    rows = session.execute(sa.select(Slot.station_id, Slot.package_id).where(Slot.id.in_(slot_ids)))
    return [scope for station_id, package_id in rows
            for scope in (changes.station(station_id), changes.package(package_id))]


def _organisations_booked_on(session, slot_ids) -> list[str]:
    """A booking's calendar event shows its slot's time: a changed slot changes those feeds."""
    return [changes.organisation(o) for o in session.scalars(
        sa.select(Booking.organisation_id).distinct().where(Booking.slot_id.in_(slot_ids)))]


def _slot_of(session, booking):
    slot_obj = booking.__dict__.get("slot")
    if slot_obj is None and booking.slot_id is not None:
        slot_obj = session.identity_map.get(identity_key(Slot, booking.slot_id))
    return slot_obj


def _booking(found, session, obj, new, deleted) -> None:
    found.keys.add(changes.PLACES)
    slot_ids = ({related_id(obj, "slot")} | old_and_new(obj, "slot_id")) - {None}
    found.keys |= {changes.slot(i) for i in slot_ids}
    slot_obj = _slot_of(session, obj)
    if slot_obj is not None:
        found.keys |= {changes.station(related_id(slot_obj, "station")),
                       changes.package(related_id(slot_obj, "package"))}
    else:
        found.later(_stations_and_packages_of_slots, slot_ids)
    organisation_ids = ({related_id(obj, "organisation")} | old_and_new(obj, "organisation_id")) - {None}
    found.keys |= {changes.organisation(i) for i in organisation_ids}


def _slot(found, session, obj, new, deleted) -> None:
    if not (new or deleted or really_changed(obj)):
        return
    found.keys |= {changes.SLOTS, changes.PLACES}
    if obj.id is not None:
        found.keys.add(changes.slot(obj.id))
        found.later(_organisations_booked_on, {obj.id})
    found.keys |= {changes.station(i) for i in ({related_id(obj, "station")} | old_and_new(obj, "station_id")) - {None}}
    found.keys |= {changes.package(i) for i in ({related_id(obj, "package")} | old_and_new(obj, "package_id")) - {None}}


def _catalogue_wide(found, session, obj, new, deleted) -> None:
    if new or deleted or really_changed(obj):
        found.keys.add(changes.GLOBAL)


def _shown_once_used(found, session, obj, new, deleted) -> None:
    # New ones show nowhere yet: no feed, page or menu lists an organisation or token before use.
    if not new and (deleted or really_changed(obj)):
        found.keys.add(changes.GLOBAL)


def _user(found, session, obj, new, deleted) -> None:
    if not new and (deleted or really_changed(obj)):
        found.keys.add(changes.user(obj.id))
    if not new and (deleted or really_changed(obj, USER_ATTRIBUTES)):
        found.keys.add(changes.GLOBAL)


def _notification(found, session, obj, new, deleted) -> None:
    found.keys.add(changes.inbox(related_id(obj, "user")))


changes.track(Booking, _booking)
changes.track(Slot, _slot, new_id_scope=changes.slot)
for model in (Station, Package, Campaign):
    changes.track(model, _catalogue_wide)
for model in (Organisation, FeedToken):
    changes.track(model, _shown_once_used)
changes.track(User, _user, new_id_scope=changes.user)
changes.track(Notification, _notification)
# Bulk statements on these tables may change anything a cache shows.
changes.track_tables(changes.GLOBAL, "stations", "campaigns", "packages", "package_stations", "slots", "bookings",
                     "organisations", "users", "station_hosts", "feed_tokens")
changes.track_tables(changes.INBOXES, "notifications")
