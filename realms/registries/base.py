"""The ``Registry`` capability and the explicit table of registry backends (Dex-style connectors).

Each backend is one folder: ``config.py`` holds its typed settings, which validate themselves
(``from_table``), and ``registry.py`` the registry those settings open. Neither module imports
this one; the table below pairs them, so there is no import circle between a config and its
registry. The conformance suite in ``tests/realms`` runs unchanged against every backend here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar

from realms.errors import ConfigError
from realms.identity.principal import Principal
from realms.registries.ldap.config import LdapRegistryConfig
from realms.registries.ldap.registry import LdapRegistry
from realms.registries.ldif.config import LdifRegistryConfig
from realms.registries.ldif.registry import LdifRegistry


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
    """A backend's typed settings, validated from its ``[realms.registry]`` table; connects nothing."""

    @classmethod
    def from_table(cls, realm: str, table: dict[str, Any], base_dir: Path) -> Self: ...


C = TypeVar("C", bound=RegistryConfig)


@dataclass(frozen=True, slots=True)
class RegistryType(Generic[C]):
    """One backend type: the config class that validates its table, and the registry it opens."""

    config: type[C]
    registry: Callable[[str, C], Registry]

    def load(self, realm: str, table: dict[str, Any], base_dir: Path) -> C:
        """The validated settings; ``ConfigError`` names the realm and the field."""
        return self.config.from_table(realm, table, base_dir)

    def open(self, realm: str, config: C) -> Registry:
        """The registry for ``realm``; connections (if any) are made when it is first used."""
        return self.registry(realm, config)


# The explicit table of backend types: ``type = "..."`` in a realm's [realms.registry] table.
REGISTRY_TYPES: Mapping[str, RegistryType[Any]] = {
    "ldap": RegistryType(LdapRegistryConfig, LdapRegistry),
    "ldif": RegistryType(LdifRegistryConfig, LdifRegistry),
}


def registry_type(realm: str, type_name: object) -> RegistryType[Any]:
    """The backend named by ``registry.type``; ``ConfigError`` for any other name."""
    if not isinstance(type_name, str) or type_name not in REGISTRY_TYPES:
        raise ConfigError(
            f"realm {realm!r}: registry.type {type_name!r} is not one of {sorted(REGISTRY_TYPES)}",
            realm=realm,
            field="registry.type",
        )
    return REGISTRY_TYPES[type_name]
