"""Seed identities, and ``SpyRegistry``: a wrapper around a real registry backend that counts
calls, can play an outage, and can hide a user (as if deleted from the directory)."""

from __future__ import annotations

from dataclasses import dataclass, field

from realms.errors import RegistryUnavailable
from realms.identity.access_id import AccessId
from realms.identity.principal import Principal
from realms.registries.base import Registry

SUFFIX = {"jobmgr": "dc=jobmgr,dc=example", "cellB": "dc=cellb,dc=example", "cellC": "dc=cellc,dc=example"}


def user_id(realm: str, uid: str) -> AccessId:
    return AccessId.user(realm, f"uid={uid},ou=people,{SUFFIX[realm]}")


def group_id(realm: str, cn: str) -> AccessId:
    return AccessId.group(realm, f"cn={cn},ou=groups,{SUFFIX[realm]}")


@dataclass
class SpyRegistry:
    inner: Registry
    down: bool = False
    hidden: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)
    realm: str = ""

    def __post_init__(self) -> None:
        self.realm = self.inner.realm

    def _check(self, what: str, username: str) -> None:
        self.calls.append((what, username))
        if self.down:
            raise RegistryUnavailable(f"realm {self.realm}: directory did not answer (test outage)", realm=self.realm)

    def authenticate(self, username: str, password: str) -> Principal | None:
        self._check("authenticate", username)
        return None if username in self.hidden else self.inner.authenticate(username, password)

    def lookup(self, username: str) -> Principal | None:
        self._check("lookup", username)
        return None if username in self.hidden else self.inner.lookup(username)

    def close(self) -> None:
        self.inner.close()
