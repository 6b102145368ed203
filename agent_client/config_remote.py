"""The ``[remote_hosts.<name>]`` and ``[credentials]`` tables of the agent's TOML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent_client.config_reader import TableReader, check_account_name, config_path
from agent_client.credentials.store import CredentialsConfig
from agent_client.errors import MapBadAccount
from agent_client.remote.hosts import ADDRESS, HOST_NAME, HostKeyInvalid, RemoteHost, parse_host_key


def remote_hosts_config(path: Path, table: Any) -> dict[str, RemoteHost]:
    hosts: dict[str, RemoteHost] = {}
    top = TableReader(path, table, "remote_hosts")
    for name, host_table in top.table.items():
        top.used.add(name)
        if not isinstance(name, str) or HOST_NAME.fullmatch(name) is None:
            raise top.fail(str(name)[:40], "a remote host name must match [A-Za-z0-9][A-Za-z0-9._-]{0,62}")
        reader = TableReader(path, host_table, f"remote_hosts.{name}")
        address = reader.get("address", str)
        if ADDRESS.fullmatch(address) is None:
            raise reader.fail("address", "must be a host name or an IP address")
        port = reader.number("port", 22, 1, 65535)
        # Why: the pinned key is required; there is no trust on first use and no known_hosts.
        try:
            host_key = parse_host_key(reader.get("host_key", str, problem="must be the host's public key line"))
        except HostKeyInvalid as exc:
            raise reader.fail("host_key", str(exc)) from None
        timeout = reader.number("connect_timeout", 15, 1, 300)
        sudo_users = reader.get("sudo_users", list, [])
        try:
            for user in sudo_users:
                check_account_name(user, "sudo user")
        except MapBadAccount as exc:
            raise reader.fail("sudo_users", exc.message) from None
        reader.done()
        hosts[name] = RemoteHost(name, address.strip("[]"), host_key, port, timeout, frozenset(sudo_users))
    return hosts


def credentials_config(path: Path, base: Path, key_file: Path, table: Any) -> CredentialsConfig:
    reader = TableReader(path, table, "credentials")
    # Why: the store's key lives beside the node key by default, under the same file-mode checks.
    store_key = (
        config_path(base, reader.get("key_file", str)) if "key_file" in table else key_file.parent / "credentials.key"
    )
    store = config_path(base, reader.get("store", str)) if "store" in table else key_file.parent / "credentials.enc"
    reader.done()
    return CredentialsConfig(store=store, key_file=store_key)
