"""The ``Registry`` capability and the explicit table of registry backends (Dex-style connectors).

Each backend is one module with a typed config that validates itself (``from_table``) and
opens the backend (``open``). The conformance suite in ``tests/realms`` runs unchanged
against every backend listed here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, Self

from realms.errors import ConfigError
from realms.identity.principal import Principal


class Registry(Protocol):
    """A realm's user registry.

    ``authenticate`` returns the principal, or ``None`` for bad credentials of any kind
    (unknown user, wrong password, ambiguous match, disabled). It raises
    ``RegistryUnavailable`` when the directory cannot answer, and never returns ``None``
    for an outage. ``lookup`` finds a user without a password, for re-checks (refresh,
    access-ID export). Implementations are safe to share between threads.
    """

    realm: str

    def authenticate(self, username: str, password: str) -> Principal | None: ...

    def lookup(self, username: str) -> Principal | None: ...

    def close(self) -> None: ...


class RegistryConfig(Protocol):
    """A backend's validated settings; ``open`` connects nothing until it is used."""

    @classmethod
    def from_table(cls, realm: str, table: dict[str, Any], base_dir: Path) -> Self: ...

    def open(self, realm: str) -> Registry: ...


# The explicit table of backend types: ``type = "..."`` in a realm's [realms.registry] table.
REGISTRY_TYPES: dict[str, str] = {
    "ldap": "realms.registries.ldap.registry:LdapRegistryConfig",
    "ldif": "realms.registries.ldif.registry:LdifRegistryConfig",
}


def registry_config_class(realm: str, type_name: object) -> type[RegistryConfig]:
    if not isinstance(type_name, str) or type_name not in REGISTRY_TYPES:
        raise ConfigError(
            f"realm {realm!r}: registry.type {type_name!r} is not one of {sorted(REGISTRY_TYPES)}",
            realm=realm,
            field="registry.type",
        )
    module_name, _, attr = REGISTRY_TYPES[type_name].partition(":")
    cls: type[RegistryConfig] = getattr(importlib.import_module(module_name), attr)
    return cls
