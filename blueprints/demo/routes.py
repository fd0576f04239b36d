"""``flask demo load`` command."""
from __future__ import annotations

import click
from flask import Blueprint

from .loader import advertised_accounts, database_is_empty, load_demo

bp = Blueprint("demo", __name__, cli_group="demo")


@bp.record_once
def _advertise_on_the_login_page(state) -> None:
    state.app.extensions["login_demo_accounts"] = advertised_accounts


@bp.cli.command("load")
@click.option("--branches", default=12, show_default=True, type=click.IntRange(1, 5000),
              help="Number of organisations (one secretary account each).")
@click.option("--if-empty", is_flag=True, help="Only load when the database has no stations yet.")
@click.option("--scale", type=click.Choice(["demo", "city"]), default="demo", show_default=True,
              help="demo: the demo district; city: city-scale benchmark data, loaded in bulk.")
@click.option("--factor", type=click.FloatRange(0.0001, 10), default=1.0, show_default=True,
              help="With --scale city: multiply the city's row counts (0.01 loads 1%).")
def load_command(branches: int, if_empty: bool, scale: str, factor: float):
    """Load the demo district, or city-scale data for the benchmark (both idempotent)."""
    if scale == "city":
        from .city import CityDataError, city_summary, load_city

        try:
            click.echo(city_summary(load_city(factor)))
        except CityDataError as error:
            raise click.ClickException(str(error)) from None
        return
    if if_empty and not database_is_empty():
        click.echo("database already has data; demo not loaded")
        return
    # Demo passwords are public: outside DEMO_MODE they must be changed at first login.
    counts = load_demo(branches=branches, require_password_change=True)
    click.echo("demo data: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    click.echo("accounts: admin, host1…, sec1… (password: partyday)")
