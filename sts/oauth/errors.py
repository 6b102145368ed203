"""Refusals of the OAuth endpoints (documented in docs/errors.md, "Token service").

Each class carries the RFC 6749 §5.2 ``error`` it is answered with; ``grant.invalid`` is one
code for several ``error`` values, one class each.
"""

from __future__ import annotations

from typing import ClassVar

from realms.errors import InputError, LoginFailed
from sts.errors import OAuthRequestError


class GrantInvalid(OAuthRequestError):
    """A token request that cannot be served (RFC 6749 §5.2): a missing, repeated or misplaced parameter."""

    code: ClassVar[str] = "grant.invalid"


class GrantTypeUnsupported(GrantInvalid):
    oauth_error: ClassVar[str] = "unsupported_grant_type"


class GrantRefused(GrantInvalid):
    """The grant presented (here: a subject token to exchange) is not valid."""

    oauth_error: ClassVar[str] = "invalid_grant"


class TargetInvalid(GrantInvalid):
    """A token exchange for an audience this STS does not serve (RFC 8693 §2.2.2)."""

    oauth_error: ClassVar[str] = "invalid_target"


class ClientAuthenticationUnsupported(GrantInvalid):
    """A client authentication method other than ``private_key_jwt``."""

    status: ClassVar[int] = 401
    oauth_error: ClassVar[str] = "invalid_client"


class RefreshTokenInvalid(InputError):
    code: ClassVar[str] = "refresh.invalid"
    oauth_error: ClassVar[str] = "invalid_grant"


class RefreshTokenReused(RefreshTokenInvalid):
    code: ClassVar[str] = "refresh.reused"


class AssertionInvalid(InputError):
    code: ClassVar[str] = "client.assertion"
    oauth_error: ClassVar[str] = "invalid_client"


class LoginLocked(LoginFailed):
    """Only logged: the caller gets exactly the ``login.failed`` answer (no account probing)."""

    code: ClassVar[str] = "login.locked"


class CodeInvalid(GrantRefused):
    """An authorization code that is unknown, expired, for another client or redirect URI, or
    whose PKCE verifier does not match (RFC 6749 §5.2 ``invalid_grant``; RFC 7636 §4.6)."""

    code: ClassVar[str] = "code.invalid"


class CodeReused(CodeInvalid):
    """An authorization code presented a second time; the tokens of its first use are revoked."""

    code: ClassVar[str] = "code.reused"


class ClientUnknown(GrantInvalid):
    """A ``client_id`` that is not a registered client of the realm."""

    code: ClassVar[str] = "client.unknown"
    status: ClassVar[int] = 401
    oauth_error: ClassVar[str] = "invalid_client"
