"""``journeygraph keys``: API keys with scopes, and signed embed tokens for widgets."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import typer
from rich.console import Console
from rich.table import Table

from api.bootstrap import open_key_store
from api.commands._output import JsonFlag, emit, fail, print_json
from api.security import SCOPES, ApiKey, issue_embed_token
from api.settings import get_settings
from graph import InvalidInput, JourneyGraphError

app = typer.Typer(
    name="keys",
    help="API keys (scopes: read, ingest, admin) and embed tokens for widgets.",
    no_args_is_help=True,
)

_TTL: Final = re.compile(r"^(?P<amount>\d{1,7})(?P<unit>[smhd]?)$")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="who or what the key is for, e.g. crm-sync")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help=f"repeat for more: {', '.join(SCOPES)}"),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Create an API key; it is printed this once and stored only hashed."""
    try:
        with open_key_store(get_settings()) as keys:
            record, key = keys.create(name, scope)
    except JourneyGraphError as error:
        raise fail(error) from error
    emit({**_row(record), "key": key}, as_json, "API key created: copy it now, it is not kept")


@app.command("list")
def list_keys(as_json: JsonFlag = False) -> None:
    """Every API key (never the keys themselves), revoked ones included."""
    with open_key_store(get_settings()) as keys:
        rows = [_row(record) for record in keys.keys()]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} API keys")
    columns = ("id", "name", "scopes", "created_at", "revoked_at")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[column] or "") for column in columns))
    Console().print(table)


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (from `keys list`)")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke an API key and every embed token it issued."""
    try:
        with open_key_store(get_settings()) as keys:
            record = keys.revoke(key_id)
    except JourneyGraphError as error:
        raise fail(error) from error
    emit(_row(record), as_json, f"API key {key_id} revoked")


@app.command()
def embed(
    widget: Annotated[str, typer.Argument(help="the widget, e.g. customer-timeline")],
    key: Annotated[
        str, typer.Option("--key", help="id of the read key that issues it (revoking it voids it)")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="a locked parameter NAME=VALUE; repeat for more"),
    ] = None,
    ttl: Annotated[str, typer.Option(help="lifetime: seconds, or 30m, 12h, 7d")] = "1d",
    base_url: Annotated[
        str, typer.Option(help="where the service is reached, for the printed iframe")
    ] = "http://127.0.0.1:8000",
    as_json: JsonFlag = False,
) -> None:
    """Sign an embed token for one widget, with parameters its holder cannot change."""
    from api.widgets import WIDGETS

    settings = get_settings()
    try:
        if widget not in WIDGETS:
            raise InvalidInput(f"no widget is named {widget!r}; widgets: {', '.join(WIDGETS)}")
        params = _params(param or [])
        with open_key_store(settings) as keys:
            issuer = keys.get(key)
        if not issuer.active or not issuer.allows("read"):
            raise InvalidInput(f"key {key} is revoked or lacks the read scope")
        token, claims = issue_embed_token(
            settings.secret_key.get_secret_value(), widget, params, _ttl(ttl), issuer.id
        )
    except JourneyGraphError as error:
        raise fail(error) from error
    url = f"{base_url.rstrip('/')}/widgets/{widget}?{urlencode({'token': token})}"
    result: dict[str, Any] = {
        "widget": widget,
        "params": claims.params,
        "expires_at": claims.expires_at.isoformat(),
        "key_id": claims.key_id,
        "token": token,
        "url": url,
        "iframe": f'<iframe src="{url}" width="800" height="480" style="border:0"></iframe>',
    }
    emit(result, as_json, "embed token")


def _row(record: ApiKey) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "scopes": ",".join(sorted(record.scopes)),
        "created_at": record.created_at.isoformat(timespec="seconds"),
        "revoked_at": record.revoked_at.isoformat(timespec="seconds")
        if record.revoked_at
        else None,
    }


def _params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise InvalidInput(f"--param {pair!r}: expected NAME=VALUE")
        params[name.strip()] = value
    return params


def _ttl(text: str) -> timedelta:
    match = _TTL.match(text.strip())
    if match is None:
        raise InvalidInput(f"--ttl {text!r}: expected seconds or a number with s, m, h or d")
    return timedelta(seconds=int(match["amount"]) * _UNITS[match["unit"]])
