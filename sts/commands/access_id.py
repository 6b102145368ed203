"""``jobsts access-id REALM USERNAME``: a user's access ID and groups, what an admin imports into
another realm's tables. With ``--config`` it asks the realm's directory directly; without, it
asks the STS over the API with the stored login."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


@click.command("access-id")
@click.option("--config", "config_path", envvar="JOBSTS_CONFIG", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the STS file and ask the directory directly (default: ask the STS with the stored login).")
@click.option("--url", default=None, help="STS base URL when not using --config (default: the last login).")
@click.argument("realm")
@click.argument("username")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
def access_id(config_path: Path | None, url: str | None, realm: str, username: str, as_json: bool) -> None:
    """Print USERNAME's access ID and groups in REALM (what an admin imports into another table)."""
    view = _local_view(config_path, realm, username) if config_path else _remote_view(url, realm, username)
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    click.echo(view["access_id"])
    for group in view["groups"]:
        click.echo(group)


def _remote_view(url: str | None, realm: str, username: str) -> dict[str, Any]:
    from urllib.parse import quote

    from sts.cli.session import authorized_client, check

    with authorized_client(url) as http:
        body: dict[str, Any] = check(http.get(f"/api/v1/access-ids/{quote(realm, safe='')}/{quote(username, safe='')}"))
    return body


def _local_view(config_path: Path, realm: str, username: str) -> dict[str, Any]:
    from sts.config import load_sts_config
    from sts.errors import RealmUnknown, UserUnknown
    from sts.nodes.access_ids import access_id_view

    config = load_sts_config(config_path)
    settings = config.realms.get(realm)
    if settings is None:
        raise RealmUnknown(f"realm {realm!r} is not in {config_path}", realm=realm)
    registry = settings.open_registry()
    try:
        principal = registry.lookup(username)
    finally:
        registry.close()
    if principal is None:
        raise UserUnknown(f"realm {realm}: no user {username!r}", realm=realm)
    return access_id_view(principal)
