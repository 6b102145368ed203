"""The authenticated principal a registry returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


def access_id_view(principal: Principal) -> dict[str, Any]:
    """What ``jobsts access-id`` prints and ``GET /api/v1/access-ids/<realm>/<username>`` returns."""
    return {
        "realm": principal.realm,
        "username": principal.username,
        "access_id": str(principal.access_id),
        "display_name": principal.display_name,
        "groups": sorted(str(group) for group in principal.groups),
    }
