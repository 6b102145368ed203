"""Realm configuration: the ``[[realms]]`` tables of the STS TOML file, validated at load.

A mistake gives one ``ConfigError`` line naming the realm and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realms.errors import ConfigError
from realms.identity.access_id import is_valid_realm_name
from realms.registries.base import Registry, RegistryConfig, RegistryType, registry_type
from realms.tokens.lifetimes import ACCESS_TOKEN_CEILING, AGENT_TOKEN_CEILING, JOB_TOKEN_CEILING, lifetimes
from realms.tokens.profiles import DEFAULT_ALGORITHM, MAX_LEEWAY_SECONDS, SIGNING_ALGORITHMS


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """How a realm signs, and how long its tokens live (seconds)."""

    algorithm: str = DEFAULT_ALGORITHM
    access_token_ttl: int = 300
    refresh_token_ttl: int = 8 * 3600
    agent_token_ttl: int = 300
    job_token_max_ttl: int = 7 * 86400
    leeway: int = 30
    # Key lifecycle: a new key is in the key set this long before it signs, and (when not 0)
    # a new key is scheduled automatically every ``key_rotation_days``.
    key_prepublish_seconds: int = 7200
    key_rotation_days: int = 0

    def max_lifetimes(self) -> dict[str, int]:
        """The longest lifetime of each profile, by ``typ``, that this realm's verifier accepts."""
        return lifetimes(access=self.access_token_ttl, agent=self.agent_token_ttl, job=self.job_token_max_ttl)


_TTL_BOUNDS = {
    "access_token_ttl": (30, ACCESS_TOKEN_CEILING),
    "refresh_token_ttl": (60, 30 * 86400),
    "agent_token_ttl": (30, AGENT_TOKEN_CEILING),
    "job_token_max_ttl": (60, JOB_TOKEN_CEILING),
    "leeway": (0, MAX_LEEWAY_SECONDS),
    "key_prepublish_seconds": (0, 30 * 86400),
}
_DAY_BOUNDS = {"key_rotation_days": (0, 3650)}


@dataclass(frozen=True, slots=True)
class RealmConfig:
    """One validated ``[[realms]]`` table: its registry settings, the backend they are for, its token policy."""

    name: str
    registry: RegistryConfig
    token: TokenPolicy
    registry_type: RegistryType[Any]

    def open_registry(self) -> Registry:
        return self.registry_type.open(self.name, self.registry)


def _fail(realm: str, field: str, problem: str) -> ConfigError:
    return ConfigError(f"realm {realm!r}: {field}: {problem}", realm=realm, field=field)


def _token_policy(realm: str, table: Any) -> TokenPolicy:
    if table is None:
        return TokenPolicy()
    if not isinstance(table, dict):
        raise _fail(realm, "token", "must be a table")
    unknown = set(table) - {"algorithm", *_TTL_BOUNDS, *_DAY_BOUNDS}
    if unknown:
        raise _fail(realm, f"token.{sorted(unknown)[0]}", "unknown setting")
    algorithm = table.get("algorithm", DEFAULT_ALGORITHM)
    if algorithm not in SIGNING_ALGORITHMS:
        raise _fail(realm, "token.algorithm", f"{algorithm!r} is not one of {', '.join(SIGNING_ALGORITHMS)}")
    values: dict[str, int] = {}
    for name, (low, high) in _TTL_BOUNDS.items():
        if name in table:
            value = table[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise _fail(realm, f"token.{name}", f"must be a whole number of seconds from {low} to {high}")
            values[name] = value
    for name, (low, high) in _DAY_BOUNDS.items():
        if name in table:
            value = table[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise _fail(realm, f"token.{name}", f"must be a whole number of days from {low} to {high}")
            values[name] = value
    return TokenPolicy(algorithm=algorithm, **values)


def realm_from_table(table: Any, base_dir: Path) -> RealmConfig:
    """Validate one ``[[realms]]`` table; relative paths are taken from ``base_dir``."""
    if not isinstance(table, dict):
        raise ConfigError("realms: each [[realms]] entry must be a table")
    name = table.get("name")
    if not isinstance(name, str) or not is_valid_realm_name(name):
        raise ConfigError(f"realm {name!r}: name: expected [A-Za-z0-9][A-Za-z0-9._-]{{0,62}}", field="name")
    unknown = set(table) - {"name", "registry", "token"}
    if unknown:
        raise _fail(name, sorted(unknown)[0], "unknown setting")
    registry_table = table.get("registry")
    if not isinstance(registry_table, dict):
        raise _fail(name, "registry", "missing [realms.registry] table")
    backend = registry_type(name, registry_table.get("type"))
    settings = {k: v for k, v in registry_table.items() if k != "type"}
    registry = backend.load(name, settings, base_dir)
    return RealmConfig(
        name=name, registry=registry, token=_token_policy(name, table.get("token")), registry_type=backend
    )


def load_realms(tables: Any, base_dir: Path) -> dict[str, RealmConfig]:
    """Validate every ``[[realms]]`` table; names must be unique."""
    if not isinstance(tables, list) or not tables:
        raise ConfigError("realms: at least one [[realms]] table is required", field="realms")
    realms: dict[str, RealmConfig] = {}
    for table in tables:
        realm = realm_from_table(table, base_dir)
        if realm.name in realms:
            raise _fail(realm.name, "name", "defined twice")
        realms[realm.name] = realm
    return realms
