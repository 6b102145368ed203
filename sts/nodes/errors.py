"""Refusals of node registration (documented in docs/errors.md, "Token service")."""

from __future__ import annotations

from typing import ClassVar

from realms.errors import InputError


class NodeUnknown(InputError):
    """No registered node by that id (in that realm). At the token endpoint the node is the
    client, so there it is ``invalid_client`` (RFC 6749 §5.2)."""

    code: ClassVar[str] = "node.unknown"
    status: ClassVar[int] = 404
    oauth_error: ClassVar[str] = "invalid_client"


class NodeExists(InputError):
    code: ClassVar[str] = "node.exists"
    status: ClassVar[int] = 409


class NodeInvalid(InputError):
    code: ClassVar[str] = "node.invalid"
