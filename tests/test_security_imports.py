"""Hostile spreadsheets posted by an admin to the organisation import: each is refused with 422 and
a Chinese message, quickly and in bounded memory, and nothing is imported.

Every file is built here with zipfile. While a file is posted, the address space of this process may
grow by at most ``GUARD_BYTES`` (``RLIMIT_AS``), so a regression fails with a MemoryError instead of
taking the machine's memory; the Python allocations of the request (tracemalloc peak) and its time
are asserted too.
"""
from __future__ import annotations

import base64
import io
import random
import re
import resource
import time
import tracemalloc
import zipfile

import pytest
from openpyxl import Workbook

from blueprints.directory import importer
from blueprints.directory.importer import MAX_COLUMNS, MAX_ROWS, ImportFileError

from . import factories as f
from .test_directory_import import GOOD_ROWS, HEADER, confirm, csv_bytes, org_count, upload

GUARD_BYTES = 512 * 1024 * 1024  # the growth of the address space allowed while a request runs
MAX_PEAK_BYTES = 100 * 1024 * 1024  # Python allocations of one refused upload
MAX_SECONDS = 2.0

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
SHARED_STRINGS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
LAUGHS = (  # "billion laughs": ten to the ninth "lol" from a few hundred bytes
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol0 "lol">'
    + "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    + "]>\n"
)


# -- building workbooks ------------------------------------------------------------------------------

def workbook_parts(rows=GOOD_ROWS[:2], header=HEADER) -> dict[str, bytes]:
    """The parts of a small, good workbook as openpyxl writes it (inline strings, no shared strings)."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    with zipfile.ZipFile(out) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def build(parts: dict[str, bytes | str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, body in parts.items():
            archive.writestr(name, body.encode() if isinstance(body, str) else body)
    return out.getvalue()


def sheet_xml(rows: list[list[str]], ref: str | None = None, shared: dict[str, int] | None = None,
              head: str = "") -> str:
    """A worksheet; cells whose text is in ``shared`` point into the shared strings."""
    shared = shared or {}
    body = []
    for r, row in enumerate(rows, start=1):
        cells = []
        for c, text in enumerate(row):
            coordinate = f"{column_letter(c + 1)}{r}"
            if text in shared:
                cells.append(f'<c r="{coordinate}" t="s"><v>{shared[text]}</v></c>')
            else:
                cells.append(f'<c r="{coordinate}" t="inlineStr"><is><t>{text}</t></is></c>')
        body.append(f'<row r="{r}">{"".join(cells)}</row>')
    dimension = f'<dimension ref="{ref}"/>' if ref else ""
    return f'{head}<worksheet xmlns="{MAIN_NS}">{dimension}<sheetData>{"".join(body)}</sheetData></worksheet>'


def column_letter(number: int) -> str:
    letters = ""
    while number:
        number, remainder = divmod(number - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def with_shared_strings(parts: dict, strings_xml: str | bytes, sheet: str) -> dict:
    parts = dict(parts)
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
        b"</Types>", f'<Override PartName="/xl/sharedStrings.xml" ContentType="{SHARED_STRINGS_TYPE}"/></Types>'.encode())
    parts["xl/sharedStrings.xml"] = strings_xml
    parts["xl/worksheets/sheet1.xml"] = sheet
    return parts


def shared_strings_xml(strings: list[str], head: str = "") -> str:
    items = "".join(f"<si><t>{s}</t></si>" for s in strings)
    return f'{head}<sst xmlns="{MAIN_NS}" count="{len(strings)}" uniqueCount="{len(strings)}">{items}</sst>'


def table(columns=len(HEADER)) -> list[list[str]]:
    """A header and two organisations without parents, widened to ``columns``."""
    extra = [f"备注{n}" for n in range(columns - len(HEADER))]
    return [HEADER + extra] + [row + [""] * len(extra) for row in (GOOD_ROWS[2], GOOD_ROWS[4])]


def huge_dimension():
    """A1:XFD10001 and one cell in XFD10001: openpyxl fills the 10,000 missing rows with 16,384
    empty cells each (1.3 GB once they are text)."""
    parts = workbook_parts()
    sheet = re.sub(rb'<dimension ref="[^"]+"', b'<dimension ref="A1:XFD10001"', parts["xl/worksheets/sheet1.xml"])
    parts["xl/worksheets/sheet1.xml"] = sheet.replace(
        b"</sheetData>", b'<row r="10001"><c r="XFD10001" t="inlineStr"><is><t>x</t></is></c></row></sheetData>')
    return build(parts)


def huge_dimension_rows():
    parts = workbook_parts()
    parts["xl/worksheets/sheet1.xml"] = re.sub(rb'<dimension ref="[^"]+"', b'<dimension ref="A1:G1048576"',
                                               parts["xl/worksheets/sheet1.xml"])
    return build(parts)


def huge_shared_string():
    """One 50 MB string: the upload is about 50 KB."""
    rows = table()
    rows[1][0] = "HUGE"
    strings = shared_strings_xml(["x" * (50 * 1024 * 1024)])
    return build(with_shared_strings(workbook_parts(), strings, sheet_xml(rows, "A1:G3", {"HUGE": 0})))


def long_shared_string():
    """Far below the size limits of the parts, but longer than any spreadsheet cell can be."""
    rows = table()
    rows[1][0] = "LONG"
    strings = shared_strings_xml(["长" * 100_000])
    return build(with_shared_strings(workbook_parts(), strings, sheet_xml(rows, "A1:G3", {"LONG": 0})))


def laughs_in_shared_strings():
    rows = table()
    rows[1][0] = "LOL"
    strings = shared_strings_xml(["&lol9;"], head=LAUGHS)
    return build(with_shared_strings(workbook_parts(), strings, sheet_xml(rows, "A1:G3", {"LOL": 0})))


def laughs_in_sheet():
    rows = table()
    rows[1][0] = "&lol9;"
    parts = workbook_parts()
    parts["xl/worksheets/sheet1.xml"] = sheet_xml(rows, "A1:G3", head=LAUGHS)
    return build(parts)


def laughs_in_styles():
    """A part only openpyxl reads (defusedxml refuses it there)."""
    parts = workbook_parts()
    assert not parts["xl/styles.xml"].startswith(b"<?xml")
    parts["xl/styles.xml"] = LAUGHS.encode() + parts["xl/styles.xml"]
    return build(parts)


def malformed_sheet():
    parts = workbook_parts()
    parts["xl/worksheets/sheet1.xml"] = parts["xl/worksheets/sheet1.xml"].replace(b"</row>", b"</rov>", 1)
    return build(parts)


def malformed_styles():
    parts = workbook_parts()
    parts["xl/styles.xml"] = parts["xl/styles.xml"][:-20]
    return build(parts)


def zip_bomb():
    """A well-formed sheet padded with 20 MB of spaces: it expands about 1000 times."""
    rows = table()
    parts = workbook_parts()
    parts["xl/worksheets/sheet1.xml"] = sheet_xml(rows, "A1:G3").replace("<sheetData>", "<sheetData>" + " " * (20 * 1024 * 1024))
    data = build(parts)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
        assert info.file_size > 900 * info.compress_size
    return data


def too_many_columns_xlsx():
    rows = table(MAX_COLUMNS + 10)
    parts = workbook_parts()
    parts["xl/worksheets/sheet1.xml"] = sheet_xml(rows, f"A1:{column_letter(MAX_COLUMNS + 10)}3")
    return build(parts)


def giant_row_under_a_small_dimension():
    """The sheet says A1:G3, but its second row has 100,000 cells."""
    rows = table()
    numbers = random.Random(5)
    cells = "".join(f"<c><v>{numbers.randrange(1000)}</v></c>" for _ in range(100_000))
    sheet = sheet_xml(rows, "A1:G3").replace('<row r="2">', f'<row r="2">{cells}', 1)
    parts = workbook_parts()
    parts["xl/worksheets/sheet1.xml"] = sheet
    return build(parts)


def shared_string_that_is_not_there():
    """Well-formed and small: only openpyxl finds out (an IndexError, a 500 before)."""
    rows = table()
    rows[1][0] = "MISSING"
    strings = shared_strings_xml(["一"])
    return build(with_shared_strings(workbook_parts(), strings, sheet_xml(rows, "A1:G3", {"MISSING": 99})))


def two_organisations() -> dict[str, bytes]:
    """A good workbook of two organisations without parents, to which each bomb below is added."""
    return workbook_parts(rows=[GOOD_ROWS[2], GOOD_ROWS[4]])


def with_cell_formats(styles: bytes, count: int, head: str = "") -> bytes:
    """``count`` empty cell formats (Excel allows 64,000; openpyxl makes an object of each)."""
    styles, replaced = re.subn(rb'<cellXfs count="\d+">.*?</cellXfs>',
                               f'<cellXfs count="{count}">{"<xf/>" * count}</cellXfs>'.encode(), styles, flags=re.S)
    assert replaced == 1
    return re.sub(rb"(<styleSheet[^>]*>)", lambda m: m.group(1) + head.encode(), styles, count=1)


def styles_bomb():
    """199,000 cell formats in 6 KB: openpyxl took 5.7 s to read the styles."""
    parts = two_organisations()
    parts["xl/styles.xml"] = with_cell_formats(parts["xl/styles.xml"], 199_000)
    return build(parts)


def listed_as_a_second_sheet(parts: dict, target: str, first: bool = False) -> dict:
    sheet = b'<sheet name="S2" sheetId="2" r:id="rIdX"/>'
    workbook = parts["xl/workbook.xml"]
    parts["xl/workbook.xml"] = re.sub(rb"<sheets>", b"<sheets>" + sheet, workbook) if first else workbook.replace(
        b"</sheets>", sheet + b"</sheets>")
    parts["xl/_rels/workbook.xml.rels"] = parts["xl/_rels/workbook.xml.rels"].replace(b"</Relationships>", (
        '<Relationship Id="rIdX" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
        f'Target="{target}"/></Relationships>').encode())
    return parts


def styles_listed_as_a_second_sheet():
    """The stylesheet also named as a worksheet, with a <dimension> first and random padding (so that
    the ratio stays low): the guard once gave it a worksheet's 32 MB and stopped at that dimension;
    openpyxl still parsed it whole as the styles (51.6 s and 1.35 GB from 172 KB)."""
    padding = base64.b64encode(random.Random(7).randbytes(100_000)).decode()
    parts = two_organisations()
    parts["xl/styles.xml"] = with_cell_formats(parts["xl/styles.xml"], 700_000,
                                               head=f'<dimension ref="A1"/><!--{padding}-->')
    return build(listed_as_a_second_sheet(parts, "styles.xml"))


def workbook_part_as_the_first_sheet():
    return build(listed_as_a_second_sheet(two_organisations(), "workbook.xml", first=True))


SHEET_TAILS = {  # what a sheet may hold after its rows, once read into objects by openpyxl
    "data-validations": lambda n: f'<dataValidations count="{n}">' + "".join(
        f'<dataValidation type="whole" sqref="A{i}"/>' for i in range(1, n + 1)) + "</dataValidations>",
    "conditional-formats": lambda n: "".join(
        f'<conditionalFormatting sqref="A{i}"><cfRule type="expression" priority="{i}"><formula>1</formula></cfRule>'
        "</conditionalFormatting>" for i in range(1, n + 1)),
    "merged-cells": lambda n: f'<mergeCells count="{n}">' + "".join(
        f'<mergeCell ref="C{i}:D{i}"/>' for i in range(1, n + 1)) + "</mergeCells>",
    "hyperlinks": lambda n: "<hyperlinks>" + "".join(
        f'<hyperlink ref="A{i}" location="Sheet!A1"/>' for i in range(1, n + 1)) + "</hyperlinks>",
}


def sheet_tail_bomb(kind: str, count: int):
    """``count`` entries after </sheetData> (49,000 data validations took openpyxl 3 to 15 s)."""
    parts = two_organisations()
    parts["xl/worksheets/sheet1.xml"] = parts["xl/worksheets/sheet1.xml"].replace(
        b"</sheetData>", b"</sheetData>" + SHEET_TAILS[kind](count).encode())
    return build(parts)


def zip_without_a_workbook():
    return build({"readme.txt": "这不是表格", "data/list.csv": "名称,类型\r\n"})


def too_many_columns_csv():
    header = HEADER + [f"备注{n}" for n in range(MAX_COLUMNS)]
    return csv_bytes([row + ["x"] * MAX_COLUMNS for row in GOOD_ROWS[:2]], header=header)


HOSTILE = {
    # id: (build the file, filename, part of the Chinese message)
    "huge-dimension-A1:XFD10001": (huge_dimension, "组织.xlsx", f"文件超过 {MAX_COLUMNS} 列"),
    "huge-dimension-rows": (huge_dimension_rows, "组织.xlsx", f"文件超过 {MAX_ROWS} 行"),
    "huge-shared-string-50MB": (huge_shared_string, "组织.xlsx", "XLSX 文件解压后超过"),
    "long-shared-string": (long_shared_string, "组织.xlsx", "个字符"),
    "entity-expansion-in-shared-strings": (laughs_in_shared_strings, "组织.xlsx", "DTD"),
    "entity-expansion-in-sheet": (laughs_in_sheet, "组织.xlsx", "DTD"),
    "entity-expansion-in-styles": (laughs_in_styles, "组织.xlsx", "DTD"),
    "malformed-sheet-xml": (malformed_sheet, "组织.xlsx", "已损坏"),
    "malformed-styles-xml": (malformed_styles, "组织.xlsx", "已损坏"),
    "zip-expanding-1000x": (zip_bomb, "组织.xlsx", "压缩比"),
    "too-many-columns-xlsx": (too_many_columns_xlsx, "组织.xlsx", f"文件超过 {MAX_COLUMNS} 列"),
    "giant-row-under-small-dimension": (giant_row_under_a_small_dimension, "组织.xlsx", f"文件超过 {MAX_COLUMNS} 列"),
    "zip-that-is-no-workbook": (zip_without_a_workbook, "组织.xlsx", "不是可读取的 XLSX"),
    "shared-string-that-is-not-there": (shared_string_that_is_not_there, "组织.xlsx", "不是可读取的 XLSX"),
    "too-many-columns-csv": (too_many_columns_csv, "组织.csv", f"文件超过 {MAX_COLUMNS} 列"),
    "workbook-part-as-the-first-sheet": (workbook_part_as_the_first_sheet, "组织.xlsx", "不是可读取的 XLSX"),
    # 147,000 elements after the rows: more than the guard streams through (it would copy none of them)
    "conditional-formats-after-the-rows": (lambda: sheet_tail_bomb("conditional-formats", 49_000), "组织.xlsx",
                                           "除单元格以外的内容"),
}


# -- measuring one request ---------------------------------------------------------------------------

def _address_space() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def post_measured(client, data: bytes, filename: str):
    """The response, its seconds and the peak of Python allocations while it was made."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    current = _address_space()
    if current is not None:
        limit = current + GUARD_BYTES
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        response = upload(client, data, filename=filename)
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        if not tracing:
            tracemalloc.stop()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    return response, seconds, peak


@pytest.fixture
def admin(login, client):
    user = login(f.create_admin())
    client.get("/admin/organisations/import")  # templates compiled before anything is timed
    return user


# -- hostile files -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(HOSTILE))
def test_admin_uploading_a_hostile_file_gets_422_quickly_in_bounded_memory_and_nothing_imported(
        client, admin, name):
    make, filename, message = HOSTILE[name]
    data = make()
    # Each fits under the upload limit, and under the 500 KB above which werkzeug's test client
    # spools the body to a temporary file it never closes (a ResourceWarning in a later test).
    assert len(data) < 500 * 1024
    response, seconds, peak = post_measured(client, data, filename)
    html = response.get_data(as_text=True)
    assert response.status_code == 422, html[:2000]
    assert message in html
    assert 'enctype="multipart/form-data"' in html  # the import page again, to choose another file
    assert org_count() == 0
    assert seconds < MAX_SECONDS, f"{name}: {seconds:.2f} s"
    assert peak < MAX_PEAK_BYTES, f"{name}: peak {peak / 2**20:.1f} MB"


def test_admin_uploading_a_too_long_cell_gets_its_row_and_column_named(client, admin):
    rows = table(len(HEADER) + 1)
    rows[2][-1] = "长" * (importer.MAX_CELL_CHARS + 1)
    parts = workbook_parts()
    parts["xl/worksheets/sheet1.xml"] = sheet_xml(rows, "A1:H3")
    response, _seconds, _peak = post_measured(client, build(parts), "组织.xlsx")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f"第 3 行「H」：单元格超过 {importer.MAX_CELL_CHARS} 个字符" in html
    assert org_count() == 0


# -- bombs made harmless: openpyxl reads a rebuilt workbook of the first sheet's cells -------------------

HARMLESS = {
    # id: build the file. Each part openpyxl would make objects of is left out of the rebuilt workbook.
    "styles-199000-cell-formats": styles_bomb,
    "styles-listed-as-a-second-sheet": styles_listed_as_a_second_sheet,
    "data-validations-49000-after-the-rows": lambda: sheet_tail_bomb("data-validations", 49_000),
    "conditional-formats-16000-after-the-rows": lambda: sheet_tail_bomb("conditional-formats", 16_000),
    "merged-cells-49000-after-the-rows": lambda: sheet_tail_bomb("merged-cells", 49_000),
    "hyperlinks-49000-after-the-rows": lambda: sheet_tail_bomb("hyperlinks", 49_000),
}


@pytest.mark.parametrize("name", list(HARMLESS))
def test_admin_uploading_a_workbook_full_of_what_is_not_cells_imports_its_cells_quickly_in_bounded_memory(
        client, admin, name):
    data = HARMLESS[name]()
    assert len(data) < 500 * 1024
    response, seconds, peak = post_measured(client, data, "组织.xlsx")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:2000]
    assert seconds < MAX_SECONDS, f"{name}: {seconds:.2f} s"
    assert peak < MAX_PEAK_BYTES, f"{name}: peak {peak / 2**20:.1f} MB"
    assert GOOD_ROWS[2][0] in html and GOOD_ROWS[4][0] in html
    assert confirm(client, html).status_code == 200
    assert org_count() == 2


def test_the_rebuilt_workbook_holds_only_the_first_sheets_cells(app):
    """What openpyxl is given instead of the upload: no styles, no second sheet, nothing after the rows."""
    from blueprints.directory import xlsx_guard
    parts = listed_as_a_second_sheet(two_organisations(), "styles.xml")
    parts["xl/worksheets/sheet1.xml"] = parts["xl/worksheets/sheet1.xml"].replace(
        b"</sheetData>", b"</sheetData>" + SHEET_TAILS["data-validations"](3).encode())
    with app.test_request_context():
        rebuilt = xlsx_guard.check(build(parts), max_rows=MAX_ROWS + 1, max_columns=MAX_COLUMNS)
    with zipfile.ZipFile(io.BytesIO(rebuilt)) as archive:
        assert sorted(archive.namelist()) == sorted([
            "[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels",
            "xl/worksheets/sheet1.xml"])
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
        assert archive.read("xl/workbook.xml").count(b"<sheet ") == 1
    assert "dataValidation" not in sheet and GOOD_ROWS[4][0] in sheet


# -- good files still import -------------------------------------------------------------------------------

def test_admin_small_xlsx_with_shared_strings_styles_and_a_second_sheet_still_imports(client, admin):
    """What Excel writes: shared strings, other sheets (this one without a dimension), pictures
    (an SVG may name its DTD)."""
    rows = table(MAX_COLUMNS)
    rows[1][-1] = "备" * importer.MAX_CELL_CHARS  # as long as a cell may be
    texts = sorted({text for row in rows for text in row if text})
    sheet = sheet_xml(rows, f"A1:{column_letter(MAX_COLUMNS)}3", {t: n for n, t in enumerate(texts)})
    parts = with_shared_strings(workbook_parts(), shared_strings_xml(texts), sheet)
    parts["xl/worksheets/sheet2.xml"] = sheet_xml([["说明"], ["每行一个组织"]])
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(b"</Types>", (
        '<Override PartName="/xl/worksheets/sheet2.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>').encode())
    parts["xl/workbook.xml"] = parts["xl/workbook.xml"].replace(
        b"</sheets>", b'<sheet name="Notes" sheetId="2" r:id="rId9"/></sheets>')
    parts["xl/_rels/workbook.xml.rels"] = parts["xl/_rels/workbook.xml.rels"].replace(b"</Relationships>", (
        '<Relationship Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet2.xml" Id="rId9"/></Relationships>').encode())
    parts["xl/media/image1.svg"] = (
        '<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n<svg xmlns="http://www.w3.org/2000/svg"/>')
    parts["xl/media/image2.png"] = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    response = upload(client, build(parts), filename="组织.xlsx")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:2000]
    done = confirm(client, html)
    assert done.status_code == 200
    assert org_count() == 2


def test_a_full_size_workbook_is_read_within_the_limits(app):
    """MAX_ROWS organisations with every column: nothing in the guard refuses it."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER)
    for n in range(MAX_ROWS):
        sheet.append([f"测试街道第{n}党支部", "党支部", "测试街道党工委", "测试街道", n % 90, "王芳", f"139{n:08d}"])
    out = io.BytesIO()
    workbook.save(out)
    start = time.perf_counter()
    with app.test_request_context():
        header, rows = importer.read_table("组织.xlsx", out.getvalue())
    seconds = time.perf_counter() - start
    assert header == HEADER and len(rows) == MAX_ROWS
    assert rows[-1][1][0] == f"测试街道第{MAX_ROWS - 1}党支部"
    assert seconds < 15, f"{seconds:.1f} s"


def test_a_hostile_workbook_is_refused_by_read_table_with_an_import_file_error(app):
    with app.test_request_context(), pytest.raises(ImportFileError):
        importer.read_table("组织.xlsx", huge_dimension())
