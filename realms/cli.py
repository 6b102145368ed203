"""``jobsts realm ...``: check a realm's directory settings without starting the STS.

``jobsts realm test --config FILE --realm NAME --username USER [--json]`` reads the password
from standard input (or a prompt on a terminal), authenticates, and prints the access ID and
groups. Exit status: 0 success, 1 bad credentials, 2 unreachable directory or bad configuration,
each failure with a one-line reason (as Keycloak's "test authentication" does).
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import click

from realms.config import RealmConfig, load_realms
from realms.errors import ConfigError, JobstsError, LoginFailed

EXIT_OK, EXIT_BAD_CREDENTIALS, EXIT_UNAVAILABLE = 0, 1, 2


def load_realms_file(path: Path) -> dict[str, RealmConfig]:
    """The ``[[realms]]`` of an STS TOML file; relative paths are taken from the file's folder."""
    try:
        with path.open("rb") as handle:
            document: dict[str, Any] = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", field="config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", field="config") from None
    return load_realms(document.get("realms"), path.resolve().parent)


def _read_password() -> str:
    if sys.stdin is not None and not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    value: str = click.prompt("Password", hide_input=True, default="", show_default=False)
    return value


def _fail(code: int, error: JobstsError, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"ok": False, "code": error.code, "message": error.message}))
    click.echo(f"error: {error.code}: {error.message}", err=True)
    sys.exit(code)


@click.group()
def realm() -> None:
    """Realms and their user registries."""


@realm.command("test")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="STS TOML file")
@click.option("--realm", "realm_name", required=True, help="realm name, as in [[realms]] name")
@click.option("--username", required=True, help="user to authenticate")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def test_command(config_path: Path, realm_name: str, username: str, as_json: bool) -> None:
    """Authenticate USERNAME in REALM (password from stdin or a prompt) and show what the STS would see."""
    try:
        realms = load_realms_file(config_path)
        if realm_name not in realms:
            raise ConfigError(
                f"{config_path}: no realm {realm_name!r} (configured: {', '.join(sorted(realms))})", field="realm"
            )
        password = _read_password()
        registry = realms[realm_name].open_registry()
        try:
            principal = registry.authenticate(username, password)
        finally:
            registry.close()
    except JobstsError as exc:
        _fail(EXIT_UNAVAILABLE, exc, as_json)
        return
    if principal is None:
        failed = LoginFailed(f"realm {realm_name}: invalid username or password for {username!r}", realm=realm_name)
        _fail(EXIT_BAD_CREDENTIALS, failed, as_json)
        return
    groups = sorted(str(g) for g in principal.groups)
    if as_json:
        result = {
            "ok": True,
            "realm": principal.realm,
            "username": principal.username,
            "access_id": str(principal.access_id),
            "display_name": principal.display_name,
            "groups": groups,
        }
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"ok: {principal.username} ({principal.display_name}) authenticated in realm {principal.realm}")
    click.echo(f"access ID: {principal.access_id}")
    click.echo(f"groups ({len(groups)}):")
    for group in groups:
        click.echo(f"  {group}")
