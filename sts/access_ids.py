"""The exported view of a user: access ID and groups, shared by the CLI and the API."""

from __future__ import annotations

from typing import Any

from realms.identity.principal import Principal


def access_id_view(principal: Principal) -> dict[str, Any]:
    """What ``jobsts access-id`` prints and ``GET /api/v1/access-ids/<realm>/<username>`` returns."""
    return {"realm": principal.realm, "username": principal.username, "access_id": str(principal.access_id),
            "display_name": principal.display_name, "groups": sorted(str(g) for g in principal.groups)}
