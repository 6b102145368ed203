"""``jobsts init``: the master key file, the database schema and every realm's signing key."""

from __future__ import annotations

from pathlib import Path

import click

from sts.commands.options import CONFIG_OPTION


@click.command()
@CONFIG_OPTION
def init(config_path: Path) -> None:
    """Create the master key file (mode 0600), the database schema and every realm's signing key."""
    from sts.config import load_sts_config
    from sts.keys.master_key import create_key_file
    from sts.services import build_services

    config = load_sts_config(config_path)
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
