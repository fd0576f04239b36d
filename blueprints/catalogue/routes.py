"""Catalogue management for district administrators: stations, campaigns, packages, quotas and
the audit trail, under /admin/. Every view is admin-only (``admin_required``).

The administration index /admin/ is ``admin_index`` here but registered on the ``admin``
blueprint (endpoint ``admin.index``) by blueprints/admin/routes.py.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from blueprints.accounts.guards import admin_required
from blueprints.accounts.services import suggest_organisations
from blueprints.catalog.models import Campaign, Package, Station
from blueprints.core.extensions import db
from blueprints.core.forms import EmptyForm
from blueprints.core.htmx import render, wants_fragment
from blueprints.core.params import page_arg
from blueprints.quotas.models import Quota, QuotaPeriod

from . import audit as audit_module
from . import services
from .forms import (ActiveForm, AuditFilterForm, CampaignForm, PackageFilterForm, PackageForm, QuotaFilterForm,
                    QuotaForm, StationFilterForm, StationForm)
from .services import CatalogueError, Referenced

bp = Blueprint("catalogue", __name__, url_prefix="/admin")

AUDIT_PAGE_SIZE = 50


def _page() -> int:
    return page_arg()


def _per_page() -> int:
    return current_app.config["PAGE_SIZE"]


def _or_404(model, row_id: int):
    row = db.session.get(model, row_id)
    if row is None:
        abort(404)
    return row


def _show_errors(form, errors: dict[str, str]) -> None:
    for name, message in errors.items():
        if not message:  # the form's own parse error is already on the field
            continue
        if name and name in form:
            form[name].errors = list(form[name].errors) + [message]
        else:
            form.form_errors.append(message)


def _blocked(refs) -> str | None:
    """Why the row cannot be deleted, or None when it can."""
    return services.references_message(refs) if refs and refs.any else None


def _filter_args(form) -> dict:
    """The list filters to keep in pagination links."""
    return {k: v for k, v in form.data.items() if v not in (None, "")}


# -- the administration index (endpoint admin.index) ------------------------------------------------

def _endpoint_for(path: str) -> str | None:
    """The endpoint serving GET ``path``, whatever another feature named it (None if absent)."""
    for rule in current_app.url_map.iter_rules():
        if rule.rule == path and "GET" in (rule.methods or ()):
            return rule.endpoint
    return None


@bp.app_template_global()
def admin_sections() -> list[tuple[str, str, str]]:
    """(key, label, url) of every administration section this app has, in menu order."""
    sections = [
        ("index", _("Overview"), "admin.index"),
        ("stations", _("Stations"), "catalogue.stations"),
        ("campaigns", _("Campaigns"), "catalogue.campaigns"),
        ("packages", _("Packages"), "catalogue.packages"),
        ("organisations", _("Organisation directory"), _endpoint_for("/admin/organisations")),
        ("accounts", _("Accounts"), _endpoint_for("/admin/accounts")),
        ("quotas", _("Quotas"), "catalogue.quotas"),
        ("audit", _("Audit trail"), "catalogue.audit"),
        ("stats", _("Statistics"), "admin.stats"),
    ]
    return [(key, label, url_for(endpoint)) for key, label, endpoint in sections
            if endpoint and endpoint in current_app.view_functions]


@bp.app_template_global()
def quota_text(quota: Quota) -> str:
    params = {"max": quota.max_bookings, "category": quota.category.label}
    if quota.period is QuotaPeriod.MONTH:
        return _("At most %(max)s %(category)s bookings per month", **params)
    if quota.period is QuotaPeriod.QUARTER:
        return _("At most %(max)s %(category)s bookings per quarter", **params)
    return _("At most %(max)s %(category)s bookings per year", **params)


@admin_required
def admin_index():
    return render_template("catalogue/index.html", counts=services.overview())


# -- stations ---------------------------------------------------------------------------------------

@bp.get("/stations")
@admin_required
def stations():
    form = StationFilterForm(request.args)
    form.validate()
    page = services.station_page(form.q.data or "", form.status.data or "", _page(), _per_page())
    return render("catalogue/stations.html", "results", form=form, page=page, args=_filter_args(form))


def _station_data(form: StationForm) -> services.StationData:
    return services.StationData(
        name=form.name.data, address=form.address.data, subdistrict=form.subdistrict.data,
        description=form.description.data, speciality=form.speciality.data, phone=form.phone.data,
        requires_approval=form.requires_approval.data, booking_cutoff_hours=form.booking_cutoff_hours.data,
        cancel_deadline_hours=form.cancel_deadline_hours.data, active=form.active.data,
        host_ids=form.hosts.data or [],
    )


def _station_form_page(form, station, status=200):
    refs = services.station_references(station.id) if station else None
    return render("catalogue/station_form.html", "form", status=status, form=form, station=station, refs=refs,
                  blocked=_blocked(refs), empty_form=EmptyForm())


def _save_station(station):
    form = StationForm(obj=station) if station else StationForm(active=True, booking_cutoff_hours=24,
                                                                  cancel_deadline_hours=24)
    current = {h.id for h in station.hosts} if station else set()
    form.set_choices(sorted(services.host_choices(), key=lambda h: h.id not in current))  # assigned ones first
    if request.method == "GET":
        if station:
            form.hosts.data = [h.id for h in station.hosts]
        return _station_form_page(form, station)
    form.validate()
    try:
        saved = services.save_station(station, _station_data(form), invalid=form.errors)
    except CatalogueError as exc:
        _show_errors(form, exc.errors)
        return _station_form_page(form, station, 422)
    flash(_("Saved the station %(name)s.", name=saved.name), "success")
    return redirect(url_for("catalogue.stations"))


@bp.route("/stations/new", methods=["GET", "POST"])
@admin_required
def new_station():
    return _save_station(None)


@bp.route("/stations/<int:station_id>", methods=["GET", "POST"])
@admin_required
def edit_station(station_id: int):
    return _save_station(_or_404(Station, station_id))


def _toggle(row, list_endpoint: str, template: str, block: str, name: str, **context):
    form = ActiveForm()
    if not form.validate_on_submit():
        if wants_fragment():
            return render(template, block, status=422, toggle_error=_("Choose active or inactive."), **context)
        flash(_("Choose active or inactive."), "error")
        return redirect(url_for(list_endpoint))
    services.set_active(row, form.active.data == "1")
    if wants_fragment():
        return render(template, block, **context)
    if row.active:
        flash(_("%(name)s is active again.", name=name), "success")
    else:
        flash(_("%(name)s is now inactive.", name=name), "success")
    return redirect(request.form.get("next") if request.form.get("next", "").startswith("/admin/")
                    else url_for(list_endpoint))


@bp.post("/stations/<int:station_id>/active")
@admin_required
def station_active(station_id: int):
    station = _or_404(Station, station_id)
    return _toggle(station, "catalogue.stations", "catalogue/stations.html", "station_row", station.name,
                   station=station)


def _delete(row, deleter, name: str, list_endpoint: str, edit_url: str):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        deleter(row)
    except Referenced as exc:
        flash(exc.message, "error")
        return redirect(edit_url)
    flash(_("Deleted %(name)s.", name=name), "success")
    return redirect(url_for(list_endpoint))


@bp.post("/stations/<int:station_id>/delete")
@admin_required
def delete_station(station_id: int):
    station = _or_404(Station, station_id)
    return _delete(station, services.delete_station, station.name, "catalogue.stations",
                   url_for("catalogue.edit_station", station_id=station_id))


# -- campaigns --------------------------------------------------------------------------------------

@bp.get("/campaigns")
@admin_required
def campaigns():
    page, counts = services.campaign_page(_page(), _per_page())
    return render("catalogue/campaigns.html", "results", page=page, counts=counts)


def _campaign_form_page(form, campaign, status=200):
    refs = services.campaign_references(campaign.id) if campaign else None
    return render("catalogue/campaign_form.html", "form", status=status, form=form, campaign=campaign, refs=refs,
                  blocked=_blocked(refs), empty_form=EmptyForm())


def _save_campaign(campaign):
    form = CampaignForm(obj=campaign) if campaign else CampaignForm(active=True)
    if request.method == "GET":
        return _campaign_form_page(form, campaign)
    form.validate()
    try:
        saved = services.save_campaign(campaign, services.CampaignData(
            name=form.name.data, starts_on=form.starts_on.data, ends_on=form.ends_on.data,
            description=form.description.data, active=form.active.data), invalid=form.errors)
    except CatalogueError as exc:
        _show_errors(form, exc.errors)
        return _campaign_form_page(form, campaign, 422)
    flash(_("Saved the campaign %(name)s.", name=saved.name), "success")
    return redirect(url_for("catalogue.campaigns"))


@bp.route("/campaigns/new", methods=["GET", "POST"])
@admin_required
def new_campaign():
    return _save_campaign(None)


@bp.route("/campaigns/<int:campaign_id>", methods=["GET", "POST"])
@admin_required
def edit_campaign(campaign_id: int):
    return _save_campaign(_or_404(Campaign, campaign_id))


@bp.post("/campaigns/<int:campaign_id>/active")
@admin_required
def campaign_active(campaign_id: int):
    campaign = _or_404(Campaign, campaign_id)
    count = services.campaign_references(campaign.id).packages
    return _toggle(campaign, "catalogue.campaigns", "catalogue/campaigns.html", "campaign_row", campaign.name,
                   campaign=campaign, package_count=count)


@bp.post("/campaigns/<int:campaign_id>/delete")
@admin_required
def delete_campaign(campaign_id: int):
    campaign = _or_404(Campaign, campaign_id)
    return _delete(campaign, services.delete_campaign, campaign.name, "catalogue.campaigns",
                   url_for("catalogue.edit_campaign", campaign_id=campaign_id))


# -- packages ---------------------------------------------------------------------------------------

@bp.get("/packages")
@admin_required
def packages():
    campaigns = services.all_campaigns()
    form = PackageFilterForm(request.args)
    form.set_choices(campaigns)
    valid = form.validate()
    page = services.package_page(
        form.q.data or "", (form.category.data or "") if valid else "",
        form.campaign.data if valid else None, (form.status.data or "") if valid else "", _page(), _per_page())
    return render("catalogue/packages.html", "results", form=form, page=page,
                  args=_filter_args(form) if valid else {})


def _package_form_page(form, package, status=200):
    refs = services.package_references(package.id) if package else None
    return render("catalogue/package_form.html", "form", status=status, form=form, package=package, refs=refs,
                  blocked=_blocked(refs), empty_form=EmptyForm())


def _save_package(package):
    if package:
        form = PackageForm(obj=package, category=package.category.value, campaign=package.campaign_id)
    else:
        form = PackageForm(active=True, duration_minutes=120, min_group_size=1, max_group_size=50)
    keep = [s.id for s in package.stations] if package else []
    stations = sorted(services.station_choices(keep), key=lambda s: s.id not in keep)  # offering ones first
    form.set_choices(services.all_campaigns(), stations)
    if request.method == "GET":
        if package:
            form.stations.data = keep
        return _package_form_page(form, package)
    form.validate()
    try:
        saved = services.save_package(package, services.PackageData(
            category=form.category.data or "", title=form.title.data, summary=form.summary.data,
            description=form.description.data, duration_minutes=form.duration_minutes.data,
            min_group_size=form.min_group_size.data, max_group_size=form.max_group_size.data,
            campaign_id=form.campaign.data, station_ids=form.stations.data or [], active=form.active.data),
            invalid=form.errors)
    except CatalogueError as exc:
        _show_errors(form, exc.errors)
        return _package_form_page(form, package, 422)
    flash(_("Saved the package %(title)s.", title=saved.title), "success")
    return redirect(url_for("catalogue.packages"))


@bp.route("/packages/new", methods=["GET", "POST"])
@admin_required
def new_package():
    return _save_package(None)


@bp.route("/packages/<int:package_id>", methods=["GET", "POST"])
@admin_required
def edit_package(package_id: int):
    return _save_package(_or_404(Package, package_id))


@bp.post("/packages/<int:package_id>/active")
@admin_required
def package_active(package_id: int):
    package = _or_404(Package, package_id)
    return _toggle(package, "catalogue.packages", "catalogue/packages.html", "package_row", package.title,
                   package=package)


@bp.post("/packages/<int:package_id>/delete")
@admin_required
def delete_package(package_id: int):
    package = _or_404(Package, package_id)
    return _delete(package, services.delete_package, package.title, "catalogue.packages",
                   url_for("catalogue.edit_package", package_id=package_id))


# -- quotas -----------------------------------------------------------------------------------------

@bp.get("/quotas")
@admin_required
def quotas():
    form = QuotaFilterForm(request.args)
    valid = form.validate()
    page = services.quota_page(form.q.data or "", (form.category.data or "") if valid else "", _page(), _per_page())
    return render("catalogue/quotas.html", "results", form=form, page=page,
                  args=_filter_args(form) if valid else {}, empty_form=EmptyForm())


def _quota_form_page(form, quota, status=200):
    suggestions = [] if quota else suggest_organisations(form.organisation.data or "")
    return render("catalogue/quota_form.html", "form", status=status, form=form, quota=quota,
                  suggestions=suggestions, empty_form=EmptyForm())


def _save_quota(quota):
    if quota:
        form = QuotaForm(obj=quota, category=quota.category.value, period=quota.period.value,
                         organisation=quota.organisation.name)
    else:
        form = QuotaForm(organisation=request.args.get("organisation", ""))
    if request.method == "GET":
        return _quota_form_page(form, quota)
    form.validate()
    try:
        saved = services.save_quota(quota, services.QuotaData(
            organisation=form.organisation.data or "", category=form.category.data or "",
            period=form.period.data or "", max_bookings=form.max_bookings.data), invalid=form.errors)
    except CatalogueError as exc:
        _show_errors(form, exc.errors)
        return _quota_form_page(form, quota, 422)
    flash(_("Saved the quota of %(name)s.", name=saved.organisation.name), "success")
    return redirect(url_for("catalogue.quotas"))


@bp.route("/quotas/new", methods=["GET", "POST"])
@admin_required
def new_quota():
    return _save_quota(None)


@bp.route("/quotas/<int:quota_id>", methods=["GET", "POST"])
@admin_required
def edit_quota(quota_id: int):
    return _save_quota(_or_404(Quota, quota_id))


@bp.post("/quotas/<int:quota_id>/delete")
@admin_required
def delete_quota(quota_id: int):
    quota = _or_404(Quota, quota_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    name = quota.organisation.name
    services.delete_quota(quota)
    flash(_("Deleted the quota of %(name)s.", name=name), "success")
    return redirect(url_for("catalogue.quotas"))


@bp.get("/quotas/organisations")
@admin_required
def organisation_options():
    """Suggestions for the organisation field (a datalist filled by htmx as the name is typed)."""
    suggestions = suggest_organisations(request.args.get("organisation", ""))
    form = QuotaForm(organisation=request.args.get("organisation", ""))
    return render("catalogue/quota_form.html", "suggestions", form=form, quota=None, suggestions=suggestions,
                  empty_form=EmptyForm())


# -- audit ------------------------------------------------------------------------------------------

@bp.get("/audit")
@admin_required
def audit():
    stations = db.session.scalars(sa.select(Station).order_by(Station.name, Station.id)).all()
    form = AuditFilterForm(request.args)
    form.set_choices(stations)
    valid = form.validate()
    if valid:
        filters = audit_module.AuditFilters(
            who=form.who.data or "", what=form.what.data or "", status=form.status.data or "",
            date_from=form.date_from.data, date_to=form.date_to.data, station_id=form.station.data,
            organisation=form.organisation.data or "")
        page = audit_module.audit_page(filters, _page(), AUDIT_PAGE_SIZE)
    else:
        page = None
    args = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in _filter_args(form).items()} if valid else {}
    return render("catalogue/audit.html", "results", form=form, page=page, args=args)
