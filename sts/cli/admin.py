"""Local admin commands that read the STS configuration file: ``init``, ``keys``, ``access-id``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sts.access_ids import access_id_view
from sts.config import StsConfig, load_sts_config
from sts.crypto import create_key_file
from sts.errors import UserUnknown

CONFIG_OPTION = click.option("--config", "config_path", required=True, envvar="JOBSTS_CONFIG",
                             type=click.Path(dir_okay=False, path_type=Path), help="The STS TOML file.")


def _config(path: Path) -> StsConfig:
    return load_sts_config(path)


@click.command()
@CONFIG_OPTION
def init(config_path: Path) -> None:
    """Create the master key file (mode 0600), the database schema and every realm's signing key."""
    from sts.services import build_services

    config = _config(config_path)
    if config.master_key_env is None and config.master_key_file is not None and not config.master_key_file.exists():
        create_key_file(config.master_key_file)
        click.echo(f"created master key {config.master_key_file} (mode 0600)")
    services = build_services(config, migrate=True)
    try:
        for realm in config.realms:
            active = [k for k in services.keys.describe(realm) if k["state"] == "active"]
            click.echo(f"realm {realm}: active key {active[0]['kid']} ({active[0]['algorithm']})")
    finally:
        services.close()
    click.echo("database ready")


@click.group()
def keys() -> None:
    """Signing keys of the realms: list and rotate."""


@keys.command("list")
@CONFIG_OPTION
@click.option("--realm", required=True)
def keys_list(config_path: Path, realm: str) -> None:
    """List a realm's keys and their states."""
    from sts.services import build_services

    services = build_services(_config(config_path))
    try:
        for key in services.keys.describe(realm):
            click.echo(f"{key['kid']}  {key['algorithm']:6}  {key['state']:8}  "
                       f"published_until={key['published_until']}")
    finally:
        services.close()


@keys.command("rotate")
@CONFIG_OPTION
@click.option("--realm", required=True)
def keys_rotate(config_path: Path, realm: str) -> None:
    """Make a new active key; the old one keeps being published until its tokens expire."""
    from sts.services import build_services

    services = build_services(_config(config_path))
    try:
        kid = services.keys.rotate(realm)
    finally:
        services.close()
    click.echo(f"realm {realm}: new active key {kid}")


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
    config = _config(config_path)
    settings = config.realms.get(realm)
    if settings is None:
        from sts.errors import RealmUnknown

        raise RealmUnknown(f"realm {realm!r} is not in {config_path}", realm=realm)
    registry = settings.open_registry()
    try:
        principal = registry.lookup(username)
    finally:
        registry.close()
    if principal is None:
        raise UserUnknown(f"realm {realm}: no user {username!r}", realm=realm)
    return access_id_view(principal)
