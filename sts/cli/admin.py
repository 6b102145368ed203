"""Local admin commands that read the STS configuration file: ``init`` and ``keys``."""

from __future__ import annotations

from pathlib import Path

import click

from sts.config import StsConfig, load_sts_config
from sts.crypto import create_key_file

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
