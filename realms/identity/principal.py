"""The authenticated principal a registry returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from realms.identity.access_id import AccessId


@dataclass(frozen=True, slots=True)
class Principal:
    """A user as its realm's registry knows it.

    ``access_id`` is the stable, realm-qualified name (``user:<realm>/<id>``); ``groups``
    holds the group access IDs, nested groups included, all of the same realm.
    """

    realm: str
    username: str
    access_id: AccessId
    display_name: str
    groups: frozenset[AccessId] = field(default_factory=frozenset)
