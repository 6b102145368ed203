"""``jobsts master-key generate|rotate|status``: rotating the master key online.

The procedure (README, "Rotating the master key"): generate a new key file; list the new
file as a fallback and roll that out to every STS process; make it the master key with the
old one as fallback and roll that out; ``rotate``; once ``status`` shows nothing left under
a fallback, drop the fallback and destroy the old file.
"""

from __future__ import annotations

from pathlib import Path

import click

from sts.commands.options import CONFIG_OPTION


@click.group("master-key")
def master_key() -> None:
    """The master key that seals signing keys and stored job tokens: generate, rotate, status."""


@master_key.command("generate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def generate(path: Path) -> None:
    """Write a new random master key to PATH (mode 0600; never overwrites)."""
    from sts.keys.master_key import create_key_file

    create_key_file(path)
    click.echo(f"new master key written to {path}")


@master_key.command("rotate")
@CONFIG_OPTION
@click.option("--batch-size", type=click.IntRange(1, 10000), default=200, show_default=True)
def rotate(config_path: Path, batch_size: int) -> None:
    """Seal again, under master_key_file, every secret sealed under a fallback key. Online and
    resumable: after a crash, run it again."""
    from sts.config import load_sts_config
    from sts.keys.master_rotation import rotate_master_key
    from sts.services import build_services

    services = build_services(load_sts_config(config_path))
    try:
        report = rotate_master_key(
            services.db,
            services.master_key,
            batch_size=batch_size,
            progress=lambda name, done: click.echo(f"{name}: {done} resealed so far"),
        )
    finally:
        services.close()
    for name, done in report.resealed.items():
        click.echo(f"{name}: {done} resealed, {report.current[name]} already under the current key")


@master_key.command("status")
@CONFIG_OPTION
def status(config_path: Path) -> None:
    """How many sealed secrets are under the current key and how many still under a fallback."""
    from sts.config import load_sts_config
    from sts.keys.master_rotation import sealing_status
    from sts.services import build_services

    services = build_services(load_sts_config(config_path))
    try:
        found = sealing_status(services.db, services.master_key)
    finally:
        services.close()
    left = sum(old for _, old in found.values())
    for name, (current, old) in found.items():
        click.echo(f"{name}: {current} under the current key, {old} under a fallback key")
    click.echo("done: the fallback keys can be removed" if left == 0 else f"{left} left: run jobsts master-key rotate")
