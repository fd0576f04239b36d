"""Statistics tables as spreadsheet rows (the files themselves: ``blueprints.core.spreadsheets``)."""
from __future__ import annotations


def ratio(value: float | None):
    """Rates go into the sheet as numbers rounded to 4 places (0.8 = 80%)."""
    return None if value is None else round(value, 4)
