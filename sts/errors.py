"""Error codes shared by several domains of the token service (documented in docs/errors.md).

Each domain keeps its own refusals beside its code (``sts.oauth.errors``, ``sts.nodes.errors``,
``sts.jobs.errors``, ...); every class carries its HTTP ``status`` and its OAuth ``oauth_error``.
"""

from __future__ import annotations

from typing import ClassVar

from realms.errors import InputError


class AuthRequired(InputError):
    """No bearer token, or not a bearer token (RFC 6750 §3.1)."""

    code: ClassVar[str] = "auth.required"
    status: ClassVar[int] = 401


class OAuthRequestError(InputError):
    """A malformed OAuth request: answered in RFC 6749 §5.2 form on every endpoint that reads one
    (introspection included), whatever else that endpoint answers in."""
