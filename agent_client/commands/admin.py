"""The administrator's commands over the API: ``node ...`` and ``access-id``.

``access-id --config FILE`` is the one local mode: on the STS host it reads the realms of the
STS file and asks the realm's directory directly, without a login.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from agent_client.api import admin as admin_api
from agent_client.api import enrollment as enrollment_api
from agent_client.api.user import user_api
from agent_client.commands.api_command import JSON_OPTION, URL_OPTION, ApiCommand, ApiGroup
from realms.config import load_realms
from realms.errors import ConfigError, RealmUnknown, UserUnknown
from realms.identity.principal import access_id_view
from realms.text import is_ascii_number


def _public_jwk(path: Path, algorithm: str | None) -> dict[str, Any]:
    """A JWK from a JSON file, or from a PEM public key (the algorithm follows the key type)."""
    from cryptography.hazmat.primitives import serialization

    from realms.tokens.algorithms import algorithms_for
    from realms.tokens.keys import public_jwk

    data = path.read_bytes()
    if data.lstrip().startswith(b"{"):
        jwk: dict[str, Any] = json.loads(data)
        return jwk
    key = serialization.load_pem_public_key(data)
    usable = algorithms_for(key)
    if not usable:
        raise click.ClickException(f"{path}: unsupported key type or size")
    if algorithm is not None and algorithm not in usable:
        raise click.ClickException(f"{path}: this key cannot sign {algorithm}; it can sign {', '.join(usable)}")
    return public_jwk(key, algorithm or usable[0])  # type: ignore[arg-type]


def _node_body(
    realm: str | None,
    public_key: Path | None,
    algorithm: str | None,
    authgroups: tuple[str, ...],
    trusted_realms: tuple[str, ...],
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if realm:
        body["realm"] = realm
    if public_key:
        body["public_jwk"] = _public_jwk(public_key, algorithm)
    if authgroups:
        body["authgroups"] = list(authgroups)
    if trusted_realms:
        body["trusted_realms"] = list(trusted_realms)
    return body


F = TypeVar("F", bound=Callable[..., Any])


def _node_options(required: bool) -> Callable[[F], F]:
    def decorate(command: F) -> F:
        for option in reversed(
            [
                click.option("--realm", required=required, help="The node's realm (one of the STS's realms)."),
                click.option(
                    "--public-key",
                    "public_key",
                    required=required,
                    type=click.Path(exists=True, dir_okay=False, path_type=Path),
                    help="The node's public key: a JWK JSON file or a PEM public key.",
                ),
                click.option(
                    "--algorithm",
                    type=click.Choice(["RS256", "PS256"]),
                    default=None,
                    help="For an RSA PEM key: the algorithm it signs with.",
                ),
                click.option("--authgroup", "authgroups", multiple=True, help="Authorization group (repeatable)."),
                click.option(
                    "--trusted-realm", "trusted_realms", multiple=True, help="A realm the node trusts (repeatable)."
                ),
            ]
        ):
            command = option(command)
        return command

    return decorate


def _print_node(shown: dict[str, Any], done: str, as_json: bool) -> None:
    """One line for a person (the key's thumbprint to compare), the whole document with --json."""
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    trusted = ",".join(shown.get("trusted_realms") or []) or "-"
    kid = (shown.get("public_jwk") or {}).get("kid")
    click.echo(f"node {shown.get('id')} {done}: realm {shown.get('realm')}, trusted {trusted}, key {kid}")


@click.group(cls=ApiGroup)
def node() -> None:
    """Register, update, unregister and list nodes (administrator; list/show need monitor)."""


@node.command("register")
@URL_OPTION
@JSON_OPTION
@click.argument("node_id")
@_node_options(required=True)
def node_register(
    url: str | None,
    as_json: bool,
    node_id: str,
    realm: str,
    public_key: Path,
    algorithm: str | None,
    authgroups: tuple[str, ...],
    trusted_realms: tuple[str, ...],
) -> None:
    """Register NODE_ID with its realm and public key."""
    body = {"id": node_id, **_node_body(realm, public_key, algorithm, authgroups, trusted_realms)}
    with user_api(url) as api:
        shown = admin_api.register_node(api, body)
    _print_node(shown, "registered", as_json)


@node.command("update")
@URL_OPTION
@JSON_OPTION
@click.argument("node_id")
@_node_options(required=False)
def node_update(
    url: str | None,
    as_json: bool,
    node_id: str,
    realm: str | None,
    public_key: Path | None,
    algorithm: str | None,
    authgroups: tuple[str, ...],
    trusted_realms: tuple[str, ...],
) -> None:
    """Change NODE_ID's realm, key, authorization groups or trusted realms."""
    body = _node_body(realm, public_key, algorithm, authgroups, trusted_realms)
    with user_api(url) as api:
        shown = admin_api.update_node(api, node_id, body)
    _print_node(shown, "updated", as_json)


@node.command("unregister")
@URL_OPTION
@click.argument("node_id")
def node_unregister(url: str | None, node_id: str) -> None:
    """Unregister NODE_ID."""
    with user_api(url) as api:
        admin_api.unregister_node(api, node_id)
    click.echo(f"node {node_id} unregistered")


@node.command("list")
@URL_OPTION
@JSON_OPTION
def node_list(url: str | None, as_json: bool) -> None:
    """List registered nodes."""
    with user_api(url) as api:
        nodes = admin_api.list_nodes(api)
    if as_json:
        click.echo(json.dumps(nodes, indent=2))
        return
    for item in nodes:
        click.echo(
            f"{item['id']}\t{item['realm']}\tauthgroups={','.join(item['authgroups']) or '-'}\t"
            f"trusted={','.join(item['trusted_realms']) or '-'}\t{_presence(item)}"
        )


def _presence(item: dict[str, Any]) -> str:
    """``connected``/``disconnected`` and when the node's agent was last seen (an older STS: ``-``)."""
    seen = item.get("last_seen_at")
    if "connected" not in item:
        return "last_seen=-"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seen)) if isinstance(seen, int) else "never"
    return f"{'connected' if item['connected'] else 'disconnected'}\tlast_seen={when}"


@node.command("show")
@URL_OPTION
@JSON_OPTION
@click.argument("node_id")
def node_show(url: str | None, as_json: bool, node_id: str) -> None:
    """Show one node as JSON (always; --json is accepted for scripts' uniformity)."""
    with user_api(url) as api:
        click.echo(json.dumps(admin_api.show_node(api, node_id), indent=2))


def _seconds(text: str) -> int:
    """``900``, ``15m``, ``2h`` or ``1d`` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    if not is_ascii_number(number):
        raise click.BadParameter("expected seconds, or a number with s, m, h or d", param_hint="--ttl")
    return int(number) * unit


@node.command("join-token")
@URL_OPTION
@JSON_OPTION
@click.argument("node_id")
@click.option("--realm", default=None, help="The node's realm (default: the registered node's).")
@click.option("--authgroup", "authgroups", multiple=True, help="An authorization group of the node (repeatable).")
@click.option("--ttl", default="15m", show_default=True, help="How long the token can be used: 900, 15m, 2h.")
def node_join_token(
    url: str | None, as_json: bool, node_id: str, realm: str | None, authgroups: tuple[str, ...], ttl: str
) -> None:
    """Create a one-time join token for NODE_ID (administrator); the agent enrolls with it
    (jobsts agent init --join-token, or jobsts agent enroll)."""
    body: dict[str, Any] = {"ttl": _seconds(ttl)}
    if realm is not None:
        body["realm"] = realm
    if authgroups:
        body["authgroups"] = list(authgroups)
    with user_api(url) as api:
        issued = enrollment_api.create_join_token(api, node_id, body)
    if as_json:
        click.echo(json.dumps(issued, indent=2))
        return
    click.echo(issued.get("join_token"))
    click.echo(
        f"single use, for node {node_id} of realm {issued.get('realm')}, until {issued.get('expires_at')}", err=True
    )


def _local_view(config_path: Path, realm: str, username: str) -> dict[str, Any]:
    """Read the ``[[realms]]`` of the STS file and ask the realm's registry directly."""
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc.strerror}", field="file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid TOML: {exc}", field="file") from None
    settings = load_realms(data.get("realms"), config_path.parent.resolve()).get(realm)
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


@click.command("access-id", cls=ApiCommand)
@click.option(
    "--config",
    "config_path",
    envvar="JOBSTS_CONFIG",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the STS file and ask the directory directly (default: ask the STS with the stored login).",
)
@click.option("--url", default=None, help="STS base URL when not using --config (default: the last login).")
@click.argument("realm")
@click.argument("username")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
def access_id(config_path: Path | None, url: str | None, realm: str, username: str, as_json: bool) -> None:
    """Print USERNAME's access ID and groups in REALM (what an admin imports into another table)."""
    if config_path:
        view = _local_view(config_path, realm, username)
    else:
        with user_api(url) as api:
            view = admin_api.access_id(api, realm, username)
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    click.echo(view["access_id"])
    for group in view["groups"]:
        click.echo(group)
