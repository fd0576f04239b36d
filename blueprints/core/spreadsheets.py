"""Every CSV and XLSX file the app writes goes through here, so that no cell is ever a formula.

A name or note that begins like a formula (``=HYPERLINK(...)``, ``=1+1``, ``+``, ``-``, ``@``, a
tab or CR, also after leading spaces, and the full-width ＝＋－＠ that Chinese input methods type)
would run when the file is opened (CSV / formula injection). OWASP's advice, followed here:

* CSV: such text gets a leading apostrophe (``'=1+1``) and every text cell is quoted, so that a
  separator inside a cell cannot start a new one in a spreadsheet that splits on ``;``. Numbers,
  dates and blanks are written as they are; only ``str`` is ever escaped (``-5`` is a number).
* XLSX: every text cell is written as text (``data_type`` ``'s'``; openpyxl would make a formula
  of any string starting with ``=`` and an error value of ``#N/A``), formula-like ones also
  quote-prefixed (Excel keeps them text when the cell is edited). The text itself is unchanged.

Characters XML cannot hold (C0 controls except tab, LF, CR; openpyxl raises on them) are dropped
from both kinds of file, so stored text never makes an export fail. The forms refuse them on the
way in (``input_guard.refuse_control_characters``); imports and older rows may still carry them.

API: ``csv_bytes(rows)``; ``xlsx_bytes(sheet_title, header, rows, title=None, widths=None)`` for
one table; ``new_workbook()``, ``append_row(sheet, values)`` and ``workbook_bytes(workbook)`` for a
sheet laid out by hand; ``csv_value`` / ``xlsx_value`` for one cell; ``unquote`` for the importer,
which reads the apostrophe back off.
"""
from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Sequence

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

CSV_MIMETYPE = "text/csv"
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

FORMULA_START = frozenset("=+-@＝＋－＠")
CONTROL_START = ("\t", "\r")
MAX_WIDTH = 60


# openpyxl's pattern leaves out what XML 1.0 also excludes: lone surrogates and U+FFFE/U+FFFF.
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")


def clean_text(text: str) -> str:
    """``text`` without the characters an XLSX file cannot hold."""
    return _NOT_XML.sub("", ILLEGAL_CHARACTERS_RE.sub("", text))


def looks_like_formula(text: str) -> bool:
    """True when a spreadsheet could take ``text`` for a formula."""
    return text.startswith(CONTROL_START) or text.lstrip()[:1] in FORMULA_START


def _needs_quote(text: str) -> bool:
    # Text that already starts with the apostrophe of a formula-like one gets another, so that
    # ``unquote`` gives back exactly what was stored.
    return looks_like_formula(text) or (text.startswith("'") and _needs_quote(text[1:]))


def unquote(text: str) -> str:
    """What ``csv_value`` stored: the leading apostrophe it added taken off again."""
    return text[1:] if text.startswith("'") and _needs_quote(text[1:]) else text


def csv_value(value):
    """One CSV cell: text cleaned and, when it looks like a formula, apostrophe-prefixed."""
    if not isinstance(value, str):
        return value
    value = clean_text(value)
    return "'" + value if _needs_quote(value) else value


def csv_bytes(rows: Iterable[Sequence]) -> bytes:
    """UTF-8 with BOM (Excel reads Chinese right), CRLF; every row as given, header rows included."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC)
    for row in rows:
        writer.writerow([csv_value(value) for value in row])
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


def xlsx_value(value):
    """One XLSX cell value: text cleaned (typed as text when the workbook is saved)."""
    return clean_text(value) if isinstance(value, str) else value


def new_workbook(sheet_title: str):
    """A workbook and its one sheet, named ``sheet_title`` (Excel allows 31 characters)."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = clean_text(sheet_title)[:31] or "Sheet"
    return workbook, sheet


def append_row(sheet, values: Sequence) -> int:
    """Append ``values`` as the next row of ``sheet``; returns its row number."""
    sheet.append([xlsx_value(value) for value in values])
    return sheet.max_row


def _as_text(cell) -> None:
    cell.data_type = "s"
    if looks_like_formula(cell.value):
        cell.quotePrefix = True


def workbook_bytes(workbook) -> bytes:
    """The saved file. Every text cell is made text here, whichever way it was written."""
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    _as_text(cell)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _fitted_widths(header: Sequence, rows: Sequence[Sequence]) -> list[float]:
    widths = []
    for index, heading in enumerate(header):
        longest = max([len(str(heading))] + [len(str(r[index])) for r in rows[:200] if len(r) > index])
        widths.append(min(4 + 2 * longest, MAX_WIDTH))
    return widths


def xlsx_bytes(sheet_title: str, header: Sequence, rows: Sequence[Sequence], *, title: str | None = None,
               widths: Sequence[float] | None = None) -> bytes:
    """One table: an optional bold title line, the bold header, the rows; panes frozen below the
    header; column widths as given or fitted to the first 200 rows."""
    workbook, sheet = new_workbook(sheet_title)
    if title is not None:
        sheet.cell(row=append_row(sheet, [title]), column=1).font = Font(bold=True, size=13)
    header_row = append_row(sheet, header)
    for cell in sheet[header_row]:
        cell.font = Font(bold=True)
    for row in rows:
        append_row(sheet, row)
    for index, width in enumerate(widths or _fitted_widths(header, rows), start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = f"A{header_row + 1}"
    return workbook_bytes(workbook)
