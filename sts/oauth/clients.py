"""Registered OAuth clients of the authorization code flow (RFC 6749 §2), per realm.

Clients are configured in the STS TOML file as ``[[clients]]`` tables (``realm``,
``client_id``, ``redirect_uris``) and validated at load. Every hosted realm also has the
first-party console client ``jobsts-console`` whose only redirect URI is
``<base_url>/console/callback``. All clients are public (RFC 6749 §2.1): they authenticate
nothing at the token endpoint, so PKCE (RFC 7636) is what binds a code to its requester.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from realms.errors import ConfigError

CONSOLE_CLIENT_ID = "jobsts-console"
CONSOLE_CALLBACK_PATH = "/console/callback"
MAX_CLIENT_ID = 64


@dataclass(frozen=True, slots=True)
class RegisteredClient:
    """A public client of one realm and its exact redirect URIs (RFC 6749 §3.1.2)."""

    realm: str
    client_id: str
    redirect_uris: tuple[str, ...]

    def allows(self, redirect_uri: str) -> bool:
        """Exact string comparison (RFC 6749 §3.1.2.3; OAuth 2.0 Security BCP §4.1.3)."""
        return redirect_uri in self.redirect_uris


def _redirect_uri(text: Any, where: str) -> str:
    if not isinstance(text, str) or not text:
        raise ConfigError(f"{where}: a redirect URI must be a non-empty string", field=where)
    parts = urlsplit(text)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    # Why: a redirect URI carries the code; plain http only to the client's own machine
    # (RFC 8252 §7.3), and no fragment (RFC 6749 §3.1.2).
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ConfigError(f"{where}: {text!r} must be https (http only for a loopback address)", field=where)
    if not parts.netloc or parts.fragment or "#" in text:
        raise ConfigError(f"{where}: {text!r} must be an absolute URI without a fragment", field=where)
    return text


def _client(table: Any, realms: Iterable[str], index: int) -> RegisteredClient:
    where = f"clients[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table", field="clients")
    unknown = set(table) - {"realm", "client_id", "redirect_uris"}
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown setting", field="clients")
    realm, client_id, uris = table.get("realm"), table.get("client_id"), table.get("redirect_uris")
    if realm not in set(realms):
        raise ConfigError(f"{where}.realm: {realm!r} is not a configured realm", field=f"{where}.realm")
    if not isinstance(client_id, str) or not client_id or len(client_id) > MAX_CLIENT_ID or not client_id.isprintable():
        raise ConfigError(f"{where}.client_id: a printable name of 1 to 64 characters", field=f"{where}.client_id")
    if client_id == CONSOLE_CLIENT_ID:
        raise ConfigError(f"{where}.client_id: {CONSOLE_CLIENT_ID} is built in", field=f"{where}.client_id")
    if not isinstance(uris, list) or not uris:
        raise ConfigError(f"{where}.redirect_uris: a non-empty list", field=f"{where}.redirect_uris")
    checked = tuple(_redirect_uri(uri, f"{where}.redirect_uris") for uri in uris)
    return RegisteredClient(realm=str(realm), client_id=client_id, redirect_uris=checked)


def load_clients(tables: Any, realms: Iterable[str], base_url: str) -> Mapping[tuple[str, str], RegisteredClient]:
    """The clients by ``(realm, client_id)``: the console client of each realm, then the configured ones."""
    names = list(realms)
    clients = {
        (realm, CONSOLE_CLIENT_ID): RegisteredClient(realm, CONSOLE_CLIENT_ID, (base_url + CONSOLE_CALLBACK_PATH,))
        for realm in names
    }
    if tables is None:
        return clients
    if not isinstance(tables, list):
        raise ConfigError("clients: must be an array of tables ([[clients]])", field="clients")
    for index, table in enumerate(tables):
        client = _client(table, names, index)
        key = (client.realm, client.client_id)
        if key in clients:
            raise ConfigError(f"clients[{index}]: {client.client_id} is registered twice in {client.realm}")
        clients[key] = client
    return clients
