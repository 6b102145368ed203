"""Client commands that talk to a running STS: ``login``, ``logout``, ``node ...`` (the job
manager's ``submit`` / ``jobs`` are in sts.cli.jobs_commands). They use the login stored by
``jobsts login`` (sts.cli.session)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sts.cli.session import authorized_client, check, forget_session, http_client, resolve_url, store_session

URL_OPTION = click.option("--url", default=None, help="STS base URL (default: the last login, or JOBSTS_URL).")


def _read_password(password_stdin: bool) -> str:
    if password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True))


@click.command()
@click.option("--url", required=True, help="STS base URL, e.g. https://sts.example.")
@click.option("--realm", required=True, help="Your realm (its directory checks the password).")
@click.option("--username", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (default when not a tty).")
def login(url: str, realm: str, username: str, password_stdin: bool) -> None:
    """Log in with a password (OAuth2 password grant) and store the tokens (mode 0600)."""
    url = url.rstrip("/")
    password = _read_password(password_stdin)
    with http_client() as http:
        response = http.post(f"{url}/realms/{realm}/token",
                             data={"grant_type": "password", "username": username, "password": password,
                                   "client_id": "jobsts-cli"})
    body = check(response)
    store_session(url, realm, username, body)
    click.echo(f"logged in to {url} as {username} ({realm}); token valid for {body.get('expires_in')}s")


@click.command()
@URL_OPTION
def logout(url: str | None) -> None:
    """Revoke the stored tokens at the STS (RFC 7009) and delete them."""
    base = resolve_url(url)
    session = forget_session(base)
    if session is None:
        click.echo(f"not logged in to {base}")
        return
    with http_client() as http:
        for name in ("refresh_token", "access_token"):
            if session.get(name):
                http.post(f"{base}/realms/{session['realm']}/revoke", data={"token": session[name]})
    click.echo(f"logged out of {base}")


def _public_jwk(path: Path, algorithm: str | None) -> dict[str, Any]:
    """A JWK from a JSON file, or from a PEM public key (the algorithm follows the key type)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    from realms.tokens.keys import public_jwk

    data = path.read_bytes()
    if data.lstrip().startswith(b"{"):
        jwk: dict[str, Any] = json.loads(data)
        return jwk
    key = serialization.load_pem_public_key(data)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return public_jwk(key, "ES256")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return public_jwk(key, "EdDSA")
    if isinstance(key, rsa.RSAPublicKey):
        return public_jwk(key, algorithm or "RS256")
    raise click.ClickException(f"{path}: unsupported key type")


def _node_body(realm: str | None, public_key: Path | None, algorithm: str | None, authgroups: tuple[str, ...],
               trusted_realms: tuple[str, ...]) -> dict[str, Any]:
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
        for option in reversed([
            click.option("--realm", required=required, help="The node's realm (one of the STS's realms)."),
            click.option("--public-key", "public_key", required=required,
                         type=click.Path(exists=True, dir_okay=False, path_type=Path),
                         help="The node's public key: a JWK JSON file or a PEM public key."),
            click.option("--algorithm", type=click.Choice(["RS256", "PS256"]), default=None,
                         help="For an RSA PEM key: the algorithm it signs with."),
            click.option("--authgroup", "authgroups", multiple=True, help="Authorization group (repeatable)."),
            click.option("--trusted-realm", "trusted_realms", multiple=True,
                         help="A realm the node trusts (repeatable)."),
        ]):
            command = option(command)
        return command

    return decorate


@click.group()
def node() -> None:
    """Register, update, unregister and list nodes (administrator; list/show need monitor)."""


@node.command("register")
@URL_OPTION
@click.argument("node_id")
@_node_options(required=True)
def node_register(url: str | None, node_id: str, realm: str, public_key: Path, algorithm: str | None,
                  authgroups: tuple[str, ...], trusted_realms: tuple[str, ...]) -> None:
    """Register NODE_ID with its realm and public key."""
    body = {"id": node_id, **_node_body(realm, public_key, algorithm, authgroups, trusted_realms)}
    with authorized_client(url) as http:
        shown = check(http.post("/api/v1/nodes", json=body))
    click.echo(json.dumps(shown, indent=2))


@node.command("update")
@URL_OPTION
@click.argument("node_id")
@_node_options(required=False)
def node_update(url: str | None, node_id: str, realm: str | None, public_key: Path | None, algorithm: str | None,
                authgroups: tuple[str, ...], trusted_realms: tuple[str, ...]) -> None:
    """Change NODE_ID's realm, key, authorization groups or trusted realms."""
    body = _node_body(realm, public_key, algorithm, authgroups, trusted_realms)
    with authorized_client(url) as http:
        shown = check(http.patch(f"/api/v1/nodes/{node_id}", json=body))
    click.echo(json.dumps(shown, indent=2))


@node.command("unregister")
@URL_OPTION
@click.argument("node_id")
def node_unregister(url: str | None, node_id: str) -> None:
    """Unregister NODE_ID."""
    with authorized_client(url) as http:
        check(http.delete(f"/api/v1/nodes/{node_id}"))
    click.echo(f"node {node_id} unregistered")


@node.command("list")
@URL_OPTION
def node_list(url: str | None) -> None:
    """List registered nodes."""
    with authorized_client(url) as http:
        body = check(http.get("/api/v1/nodes"))
    for item in body["nodes"]:
        click.echo(f"{item['id']}\t{item['realm']}\tauthgroups={','.join(item['authgroups']) or '-'}\t"
                   f"trusted={','.join(item['trusted_realms']) or '-'}")


@node.command("show")
@URL_OPTION
@click.argument("node_id")
def node_show(url: str | None, node_id: str) -> None:
    """Show one node as JSON."""
    with authorized_client(url) as http:
        click.echo(json.dumps(check(http.get(f"/api/v1/nodes/{node_id}")), indent=2))

