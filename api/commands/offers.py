"""``journeygraph offers``: the offers catalogue that next-best-offer models rank from."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.table import Table

from api.bootstrap import open_ingestor, open_store
from api.commands._output import JsonFlag, emit, fail, print_json
from api.settings import get_settings
from graph import JourneyGraphError

app = typer.Typer(
    name="offers",
    help="The offers catalogue: Offer vertices with category, margin and launch date.",
    no_args_is_help=True,
)


@app.command()
def load(
    file: Annotated[
        Path,
        typer.Argument(
            help="a CSV or Parquet catalogue: offer_id, margin_gbp; optional name, kind, "
            "category, monthly_margin_gbp, term_months, launched_at"
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Load an offers catalogue into the graph; bad rows go to the quarantine with a reason."""
    from ingest.catalogue import CATALOGUE_SOURCE, load_offer_catalogue

    settings = get_settings()
    try:
        store = open_store(settings)
    except JourneyGraphError as error:
        raise fail(error) from error
    with store:
        ingestor = open_ingestor(settings, store)
        quarantine = ingestor.quarantine_path(CATALOGUE_SOURCE)
        try:
            summary = load_offer_catalogue(store, file, quarantine)
        except (JourneyGraphError, OSError) as error:
            raise fail(error) from error
        finally:
            ingestor.close()
    result: dict[str, Any] = summary.as_dict()
    result["quarantine"] = str(quarantine) if summary.quarantined else None
    emit(result, as_json, f"loaded {summary.loaded:,} offers from {file}")


@app.command("list")
def list_offers(
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 1_000,
    as_json: JsonFlag = False,
) -> None:
    """The Offer vertices in the graph with their catalogue properties."""
    from graph import VertexLabel

    settings = get_settings()
    try:
        with open_store(settings) as store:
            found = store.find_vertices(VertexLabel.OFFER, limit=limit)
    except JourneyGraphError as error:
        raise fail(error) from error
    rows = sorted(({"id": vertex.id, **vertex.properties} for vertex in found), key=_by_id)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} offers")
    for column in _LISTED:
        table.add_column(column, justify="right" if column in _NUMBERS else "left")
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in _LISTED))
    Console().print(table)


_LISTED: Final = ("offer_id", "name", "kind", "category", "margin_gbp", "launched_at")
_NUMBERS: Final = frozenset({"margin_gbp"})


def _by_id(row: dict[str, Any]) -> str:
    return str(row["id"])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)
