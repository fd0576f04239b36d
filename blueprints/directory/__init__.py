"""The district's directory: organisations (with spreadsheet import and export) and accounts."""
