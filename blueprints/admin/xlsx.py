"""Spreadsheets: every statistics table as an XLSX file with Chinese headers."""
from __future__ import annotations

from io import BytesIO

from openpyxl import Workbook
from openpyxl.styles import Font

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def workbook_bytes(title: str, headers: list[str], rows: list[list]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    ws.append(headers)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append(row)
    for index, header in enumerate(headers, start=1):
        width = max([len(str(header))] + [len(str(r[index - 1])) for r in rows[:200] if len(r) >= index])
        ws.column_dimensions[ws.cell(row=1, column=index).column_letter].width = min(4 + 2 * width, 60)
    ws.freeze_panes = "A2"
    out = BytesIO()
    wb.save(out)
    return out.getvalue()


def ratio(value: float | None):
    """Rates go into the sheet as numbers rounded to 4 places (0.8 = 80%)."""
    return None if value is None else round(value, 4)
