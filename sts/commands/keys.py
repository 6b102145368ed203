"""``jobsts keys list|rotate|rotate-due``: the realms' signing keys and their lifecycle."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from sts.commands.options import CONFIG_OPTION


def _when(stamp: int | None) -> str:
    return "-" if not stamp else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


@click.group()
def keys() -> None:
    """Signing keys of the realms: list, rotate (scheduled or now), rotate the ones due."""


@keys.command("list")
@CONFIG_OPTION
@click.option("--realm", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def keys_list(config_path: Path, realm: str, as_json: bool) -> None:
    """List a realm's keys (both rings) and their states: next, active, retiring, retired."""
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
                f"{key['kid']}  {key['algorithm']:6}  {key['state']:8}  signs_from={_when(key['activates_at'])}"
                f"  published_until={_when(key['published_until'])}"
            )
    finally:
        services.close()


@keys.command("rotate")
@CONFIG_OPTION
@click.option("--realm", required=True)
@click.option(
    "--now",
    "immediate",
    is_flag=True,
    help="Emergency: the new key signs at once, before caches have it (verifiers refetch on the unknown kid).",
)
def keys_rotate(config_path: Path, realm: str, immediate: bool) -> None:
    """Schedule a new key (and a new ID-token key): published now, it signs after the realm's
    key_prepublish_seconds; the old key stays published until its tokens have expired."""
    from sts.config import load_sts_config
    from sts.services import build_services

    services = build_services(load_sts_config(config_path))
    try:
        kid = services.keys.rotate(realm, immediate=immediate)
        signs_from = next(k["activates_at"] for k in services.keys.describe(realm) if k["kid"] == kid)
    finally:
        services.close()
    click.echo(f"realm {realm}: new key {kid} published, signs from {_when(signs_from)}")


@keys.command("rotate-due")
@CONFIG_OPTION
def keys_rotate_due(config_path: Path) -> None:
    """Automatic rotation (key_rotation_days): schedule a new key wherever one is due, and settle
    key states. Housekeeping runs the same; safe to run from cron on several hosts at once."""
    from sts.config import load_sts_config
    from sts.services import build_services

    services = build_services(load_sts_config(config_path))
    try:
        made = services.keys.maintain()
    finally:
        services.close()
    click.echo(f"{len(made)} new key(s) scheduled" + (": " + ", ".join(made) if made else ""))
