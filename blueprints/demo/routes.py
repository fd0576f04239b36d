"""``flask demo load`` command."""
from __future__ import annotations

import click
from flask import Blueprint

from .loader import database_is_empty, load_demo

bp = Blueprint("demo", __name__, cli_group="demo")


@bp.cli.command("load")
@click.option("--branches", default=12, show_default=True, type=click.IntRange(1, 5000),
              help="Number of organisations (one secretary account each).")
@click.option("--if-empty", is_flag=True, help="Only load when the database has no stations yet.")
def load_command(branches: int, if_empty: bool):
    """Load the demo district (idempotent)."""
    if if_empty and not database_is_empty():
        click.echo("database already has data; demo not loaded")
        return
    counts = load_demo(branches=branches)
    click.echo("demo data: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    click.echo("accounts: admin, host1…, sec1… (password: partyday)")
