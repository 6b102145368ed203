"""``jobsts keys list|rotate``: the realms' signing keys."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sts.commands.options import CONFIG_OPTION


@click.group()
def keys() -> None:
    """Signing keys of the realms: list and rotate."""


@keys.command("list")
@CONFIG_OPTION
@click.option("--realm", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def keys_list(config_path: Path, realm: str, as_json: bool) -> None:
    """List a realm's keys and their states."""
    from sts.config import load_sts_config
    from sts.services import build_services

    services = build_services(load_sts_config(config_path))
    try:
        described = services.keys.describe(realm)
        if as_json:
            click.echo(json.dumps(described, indent=2, default=str))
            return
        for key in described:
            click.echo(
                f"{key['kid']}  {key['algorithm']:6}  {key['state']:8}  published_until={key['published_until']}"
            )
    finally:
        services.close()


@keys.command("rotate")
@CONFIG_OPTION
@click.option("--realm", required=True)
def keys_rotate(config_path: Path, realm: str) -> None:
    """Make a new active key; the old one keeps being published until its tokens expire."""
    from sts.config import load_sts_config
    from sts.services import build_services

    services = build_services(load_sts_config(config_path))
    try:
        kid = services.keys.rotate(realm)
    finally:
        services.close()
    click.echo(f"realm {realm}: new active key {kid}")
