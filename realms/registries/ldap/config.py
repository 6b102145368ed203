"""Settings of the ``ldap`` registry backend: ``[realms.registry] type = "ldap"``, validated at load.

The registry these settings open is ``realms.registries.ldap.registry.LdapRegistry``; the
backend table in ``realms.registries.base`` pairs the two, so this module imports neither.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from realms.env_secrets import read_env
from realms.registries.directory import DirectorySchema, TableReader

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LdapRegistryConfig:
    """``[realms.registry] type = "ldap"`` (README, "Realms and registries", lists every setting)."""

    url: str
    host: str
    port: int
    use_ssl: bool
    schema: DirectorySchema
    start_tls: bool = False
    tls_verify: bool = True
    ca_file: str | None = None
    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)
    connect_timeout: float = 5.0
    receive_timeout: int = 10
    pool_size: int = 4
    group_cache_seconds: float = 30.0
    max_groups: int = 1000

    @classmethod
    def from_table(cls, realm: str, table: dict[str, Any], base_dir: Path) -> Self:
        reader = TableReader(realm, table)
        url = reader.string("url", required=True)
        parts = urlsplit(url)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname or parts.path not in ("", "/"):
            raise reader.fail("url", "must be ldap://host[:port] or ldaps://host[:port]")
        try:
            port = parts.port or (636 if parts.scheme == "ldaps" else 389)
        except ValueError:
            raise reader.fail("url", "bad port") from None
        start_tls = reader.boolean("start_tls", False)
        if start_tls and parts.scheme == "ldaps":
            raise reader.fail("start_tls", "ldaps:// already uses TLS; use ldap:// with start_tls")
        ca_path = reader.path("ca_file", base_dir, required=False)
        if ca_path is not None and not ca_path.is_file():
            raise reader.fail("ca_file", f"{ca_path} is not a readable file")
        bind_dn = reader.dn("bind_dn")
        password = reader.string("bind_password")
        env_name = reader.string("bind_password_env")
        if password and env_name:
            raise reader.fail("bind_password_env", "set bind_password or bind_password_env, not both")
        if env_name:
            # Why <NAME>_FILE too: a container secret is a file, and a password in the environment
            # is visible to every child process.
            password = read_env(env_name) or ""
            if not password:
                unset = f"environment variable {env_name} (or {env_name}_FILE) is not set"
                raise reader.fail("bind_password_env", unset)
        if bool(bind_dn) != bool(password):
            raise reader.fail("bind_dn", "bind_dn and bind_password go together (or neither, for anonymous search)")
        tls_verify = reader.boolean("tls_verify", True)
        if not tls_verify:
            log.warning("realm %s: tls_verify = false: the directory's certificate is not checked", realm)
        config = cls(
            url=url,
            host=parts.hostname,
            port=port,
            use_ssl=parts.scheme == "ldaps",
            schema=DirectorySchema.read(reader, require_bases=True),
            start_tls=start_tls,
            tls_verify=tls_verify,
            ca_file=str(ca_path) if ca_path else None,
            bind_dn=bind_dn,
            bind_password=password,
            connect_timeout=reader.number("connect_timeout", 5.0, 0.1, 120),
            # ldap3 packs the receive timeout into SO_RCVTIMEO as whole seconds.
            receive_timeout=reader.integer("receive_timeout", 10, 1, 600),
            pool_size=reader.integer("pool_size", 4, 1, 64),
            # 0 turns the nested-group closure cache off (realms.registries.ldap.group_cache).
            group_cache_seconds=reader.number("group_cache_seconds", 30.0, 0, 3600),
            max_groups=reader.integer("max_groups", 1000, 1, 100_000),
        )
        reader.finish()
        return config
