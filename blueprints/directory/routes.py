"""District administrators keep the directory: organisations (list, edit, import, export) and
accounts (list, create, edit, reset password, deactivate). Every route is for admins only."""
from __future__ import annotations

import base64
from datetime import date

from flask import Blueprint, abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from blueprints.accounts import services as account_services
from blueprints.accounts.guards import admin_required
from blueprints.accounts.models import Organisation, OrganisationKind, Role, User
from blueprints.core import spreadsheets
from blueprints.core.extensions import db
from blueprints.core.forms import EmptyForm
from blueprints.core.htmx import render
from blueprints.core.params import page_arg, parse_int

from . import importer, services
from .forms import (
    AccountFilterForm, AccountForm, ImportConfirmForm, ImportUploadForm, OrganisationFilterForm, OrganisationForm,
)
from .importer import ImportFileError
from .services import DirectoryError

bp = Blueprint("directory", __name__, url_prefix="/admin")

XLSX_MIMETYPE = spreadsheets.XLSX_MIMETYPE
PREVIEW_LIMIT = 300  # rows of each kind listed on the preview page


def _import_limit() -> int:
    return current_app.config.get("DIRECTORY_IMPORT_MAX_BYTES", 2 * 1024 * 1024)


def _page_number() -> int:
    return page_arg()


def _per_page() -> int:
    return current_app.config.get("PAGE_SIZE", 20)


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(413)
def upload_too_large(error):
    """Bigger than the whole application accepts (MAX_CONTENT_LENGTH): the import page says so."""
    if request.endpoint == "directory.import_organisations":
        return _upload_page([_too_large_message()], status=413)
    return render_template("core/error.html", title=_("File too large"),
                           message=_("The uploaded file is too large."), status=413), 413


def _too_large_message() -> str:
    megabytes = _import_limit() / (1024 * 1024)
    return _("The file is larger than %(size)s MB. Please split it into several files.", size=f"{megabytes:g}")


# -- organisations ----------------------------------------------------------------------------------

def _organisation_filters(form: OrganisationFilterForm) -> services.OrganisationFilters:
    filters = services.OrganisationFilters(q=(form.q.data or "").strip()[:100])
    if form.kind.data in {k.value for k in OrganisationKind}:
        filters.kind = OrganisationKind(form.kind.data)
    if form.subdistrict.data and any(form.subdistrict.data == value for value, _label in form.subdistrict.choices):
        filters.subdistrict = form.subdistrict.data
    # ASCII digits within the integer column's range (isdigit let "²" through to int(); PostgreSQL 500 before)
    if parse_int(form.parent.data):
        filters.parent_id = parse_int(form.parent.data)
    if form.status.data in ("active", "inactive", "all"):
        filters.status = form.status.data
    return filters


def _filter_args(form) -> dict:
    return {name: field.data for name, field in form._fields.items() if field.data and name != "csrf_token"}


@bp.get("/organisations")
@admin_required
def organisations():
    form = OrganisationFilterForm(request.args, subdistricts=services.subdistrict_choices(),
                                  parents=services.parent_choices())
    filters = _organisation_filters(form)
    page, accounts = services.organisation_page(filters, _page_number(), _per_page())
    args = _filter_args(form)
    return render("directory/organisations.html", "results", form=form, page_obj=page, accounts=accounts,
                  filter_args=args)


@bp.get("/organisations/suggest")
@admin_required
def suggest_organisations():
    """<option>s for the organisation fields' datalist (htmx); the fields work without it."""
    text = request.args.get("q") or request.args.get("organisation") or request.args.get("parent") or ""
    names = account_services.suggest_organisations(text, parents_only="parent" in request.args)
    return render_template("directory/_suggestions.html", names=names)


def _organisation_form_page(form, organisation, status=200):
    return render("directory/organisation_form.html", "form", status=status, form=form, organisation=organisation)


def _save_organisation(form, organisation):
    try:
        saved = services.save_organisation(
            organisation, name=form.name.data, kind=OrganisationKind(form.kind.data),
            parent_name=form.parent.data or "", subdistrict=form.subdistrict.data or "",
            member_count=form.member_count.data, secretary_name=form.secretary_name.data or "",
            secretary_phone=form.secretary_phone.data or "", active=form.active.data,
        )
        db.session.commit()
    except DirectoryError as exc:
        db.session.rollback()
        form.form_errors.append(str(exc))
        return None
    except IntegrityError:
        db.session.rollback()
        form.form_errors.append(_("An organisation named “%(name)s” already exists.", name=form.name.data))
        return None
    return saved


@bp.route("/organisations/new", methods=["GET", "POST"])
@admin_required
def new_organisation():
    form = OrganisationForm()
    if form.validate_on_submit():
        saved = _save_organisation(form, None)
        if saved is not None:
            flash(_("Organisation “%(name)s” created.", name=saved.name), "success")
            return redirect(url_for("directory.organisations", q=saved.name))
    status = 422 if request.method == "POST" else 200
    return _organisation_form_page(form, None, status)


@bp.route("/organisations/<int:organisation_id>/edit", methods=["GET", "POST"])
@admin_required
def edit_organisation(organisation_id):
    organisation = db.session.get(Organisation, organisation_id) or abort(404)
    form = OrganisationForm(obj=None if request.method == "POST" else organisation)
    if request.method == "GET":
        form.kind.data = organisation.kind.value
        form.parent.data = organisation.parent.name if organisation.parent else ""
    if form.validate_on_submit():
        saved = _save_organisation(form, organisation)
        if saved is not None:
            flash(_("Organisation “%(name)s” saved.", name=saved.name), "success")
            return redirect(url_for("directory.organisations", q=saved.name))
    status = 422 if request.method == "POST" else 200
    return _organisation_form_page(form, organisation, status)


# -- import -----------------------------------------------------------------------------------------------

def _upload_page(errors, status=200, form=None):
    return _no_store(make_response(render_template(
        "directory/import.html", form=form or ImportUploadForm(formdata=None), errors=errors,
        limit_mb=f"{_import_limit() / (1024 * 1024):g}", columns=importer.COLUMNS, max_rows=importer.MAX_ROWS,
    ), status))


@bp.route("/organisations/import", methods=["GET", "POST"])
@admin_required
def import_organisations():
    form = ImportUploadForm()
    if request.method == "GET":
        return _upload_page([])
    if not form.validate_on_submit():
        return _upload_page([_("The form has expired. Please choose the file again.")], 400)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _upload_page([_("Please choose a CSV or XLSX file.")], 422)
    data = upload.stream.read(_import_limit() + 1)
    if len(data) > _import_limit():
        return _upload_page([_too_large_message()], 413)
    try:
        header, rows = importer.read_table(upload.filename, data)
    except ImportFileError as exc:
        return _upload_page([str(exc)], 422)
    parsed, errors = importer.parse_rows(header, rows)
    # Compare with the database even when some cells are wrong, so that one upload lists every problem.
    plan = importer.plan_import([r for r in parsed if r.name and r.kind])
    errors = sorted(errors + plan.errors, key=lambda e: (e.row or 0))
    if errors:
        return _upload_page([str(e) for e in errors], 422)
    confirm = ImportConfirmForm(formdata=None)
    confirm.rows.data = importer.sign_rows(parsed, current_user.id, upload.filename)
    if len(confirm.rows.data) > current_app.config.get("MAX_FORM_MEMORY_SIZE", 500_000) - 10_000:
        # The preview travels back in a form field, which the server accepts only up to this size.
        return _upload_page([_("The file has too much text for one import. Please split it into several files.")], 413)
    confirm.invite_secretaries.data = False
    return _no_store(make_response(render_template(
        "directory/import_preview.html", plan=plan, form=confirm, filename=upload.filename,
        invitations=services.invitation_count(plan), limit=PREVIEW_LIMIT,
        kind_label=lambda value: OrganisationKind(value).label,
    )))


@bp.post("/organisations/import/confirm")
@admin_required
def confirm_import():
    form = ImportConfirmForm()
    if not form.validate_on_submit() or not form.rows.data:
        return _upload_page([_("The preview could not be read. Please upload the file again.")], 400)
    try:
        rows, filename = importer.load_rows(form.rows.data, current_user.id)
    except ImportFileError as exc:
        return _upload_page([str(exc)], 422)
    plan = importer.plan_import(rows)
    if plan.errors:  # the database changed since the preview
        return _upload_page([str(e) for e in plan.errors], 422)
    try:
        by_name = importer.apply_plan(plan)
        invitations = []
        if form.invite_secretaries.data:
            invitations = services.invite_secretaries([by_name[c.row.name] for c in plan.changes])
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        current_app.logger.warning("organisation import collided with another change", exc_info=True)
        return _upload_page([_("Someone changed the organisations at the same time. Nothing was imported; please upload the file again.")], 409)
    current_app.logger.info("organisation import by %s from %s: %s created, %s updated, %s invited",
                            current_user.username, filename, len(plan.creates), len(plan.updates), len(invitations))
    return _no_store(make_response(render_template(
        "directory/import_done.html", plan=plan, invitations=invitations, filename=filename,
        invitations_csv=_invitations_data_url(invitations),
    )))


def _invitations_data_url(invitations) -> str | None:
    """The new accounts as a CSV download inside the page: the passwords are stored nowhere."""
    if not invitations:
        return None
    data = spreadsheets.csv_bytes([["组织", "书记姓名", "用户名", "一次性密码"]] + [
        [item.organisation, item.display_name, item.username, item.password] for item in invitations])
    return "data:text/csv;charset=utf-8;base64," + base64.b64encode(data).decode("ascii")


# -- export -----------------------------------------------------------------------------------------------

def _export_rows():
    form = OrganisationFilterForm(request.args, subdistricts=services.subdistrict_choices(), parents=())
    return importer.export_rows(services.organisation_query(_organisation_filters(form)))


def _download(body: bytes, mimetype: str, extension: str):
    response = make_response(body)
    response.mimetype = mimetype
    filename = f"organisations-{date.today().isoformat()}.{extension}"
    response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    return response


@bp.get("/organisations/export.xlsx")
@admin_required
def export_xlsx():
    return _download(importer.xlsx_bytes(_export_rows()), XLSX_MIMETYPE, "xlsx")


@bp.get("/organisations/export.csv")
@admin_required
def export_csv():
    response = _download(importer.csv_bytes(_export_rows()), "text/csv", "csv")
    response.charset = "utf-8"
    return response


# -- accounts ----------------------------------------------------------------------------------------------

@bp.get("/accounts")
@admin_required
def accounts():
    form = AccountFilterForm(request.args, meta={"csrf": False})
    filters = services.AccountFilters(q=(form.q.data or "").strip()[:100])
    if form.role.data in {r.value for r in Role}:
        filters.role = Role(form.role.data)
    if form.status.data in ("active", "inactive", "all"):
        filters.status = form.status.data
    page = services.account_page(filters, _page_number(), _per_page())
    return render("directory/accounts.html", "results", form=form, page_obj=page, filter_args=_filter_args(form))


def _account_form_page(form, user, status=200):
    return render("directory/account_form.html", "form", status=status, form=form, user=user,
                  action_form=EmptyForm())


def _password_page(user, password, created, feeds_renewed=0):
    return _no_store(make_response(render_template(
        "directory/password_issued.html", user=user, password=password, created=created,
        feeds_renewed=feeds_renewed)))


def _save_account(form, user):
    try:
        saved, password = services.save_account(
            user, acting=current_user, username=form.username.data if user is None else user.username,
            display_name=form.display_name.data, role=Role(form.role.data),
            organisation_name=form.organisation.data or "", station_ids=form.stations.data or [],
            phone=form.phone.data or "", email=form.email.data or "",
        )
        db.session.commit()
    except DirectoryError as exc:
        db.session.rollback()
        form.form_errors.append(str(exc))
        return None, None
    except IntegrityError:
        db.session.rollback()
        form.form_errors.append(_("The username “%(name)s” is taken.", name=form.username.data))
        return None, None
    return saved, password


@bp.route("/accounts/new", methods=["GET", "POST"])
@admin_required
def new_account():
    form = AccountForm(stations=services.station_choices())
    if form.validate_on_submit():
        saved, password = _save_account(form, None)
        if saved is not None:
            return _password_page(saved, password, created=True)
    return _account_form_page(form, None, 422 if request.method == "POST" else 200)


@bp.route("/accounts/<int:user_id>/edit", methods=["GET", "POST"])
@admin_required
def edit_account(user_id):
    user = db.session.get(User, user_id) or abort(404)
    form = AccountForm(obj=None if request.method == "POST" else user, stations=services.station_choices())
    del form.username
    if request.method == "GET":
        form.role.data = user.role.value
        form.organisation.data = user.organisation.name if user.organisation else ""
        form.stations.data = [s.id for s in user.stations]
    if form.validate_on_submit():
        saved, _password = _save_account(form, user)
        if saved is not None:
            flash(_("Account “%(name)s” saved.", name=saved.username), "success")
            return redirect(url_for("directory.accounts", q=saved.username, status="all"))
    return _account_form_page(form, user, 422 if request.method == "POST" else 200)


@bp.post("/accounts/<int:user_id>/reset-password")
@admin_required
def reset_password(user_id):
    user = db.session.get(User, user_id) or abort(404)
    if not EmptyForm().validate_on_submit():
        abort(400)
    reset = services.reset_password(user)
    db.session.commit()
    current_app.logger.info("password of %s reset by %s (%d feed addresses replaced)", user.username,
                            current_user.username, reset.feeds_renewed)
    return _password_page(user, reset.password, created=False, feeds_renewed=reset.feeds_renewed)


def _set_active(user_id, active):
    user = db.session.get(User, user_id) or abort(404)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        feeds_renewed = services.set_active(user, active, current_user)
        db.session.commit()
    except DirectoryError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("directory.edit_account", user_id=user.id))
    if active:
        flash(_("Account “%(name)s” is active again.", name=user.username), "success")
    elif feeds_renewed:
        flash(_("Account “%(name)s” is deactivated; its sessions have ended and its calendar feed addresses "
                "no longer work.", name=user.username), "success")
    else:
        flash(_("Account “%(name)s” is deactivated; its sessions have ended.", name=user.username), "success")
    return redirect(url_for("directory.edit_account", user_id=user.id))


@bp.post("/accounts/<int:user_id>/deactivate")
@admin_required
def deactivate_account(user_id):
    return _set_active(user_id, False)


@bp.post("/accounts/<int:user_id>/activate")
@admin_required
def activate_account(user_id):
    return _set_active(user_id, True)
