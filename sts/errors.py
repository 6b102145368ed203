"""Error codes of the token service (documented in docs/errors.md, "Token service")."""

from __future__ import annotations

from typing import ClassVar

from realms.errors import ConfigError, InputError, LoginFailed


class RealmUnknown(InputError):
    code: ClassVar[str] = "realm.unknown"


class AuthRequired(InputError):
    """No bearer token, or not a bearer token (RFC 6750 §3.1)."""

    code: ClassVar[str] = "auth.required"


class LoginLocked(LoginFailed):
    """Only logged: the caller gets exactly the ``login.failed`` answer (no account probing)."""

    code: ClassVar[str] = "login.locked"


class NodeUnknown(InputError):
    code: ClassVar[str] = "node.unknown"


class NodeExists(InputError):
    code: ClassVar[str] = "node.exists"


class NodeInvalid(InputError):
    code: ClassVar[str] = "node.invalid"


class UserUnknown(InputError):
    code: ClassVar[str] = "user.unknown"


class SigningKeyMissing(ConfigError):
    code: ClassVar[str] = "keys.missing"


class GrantInvalid(InputError):
    """A token request that cannot be served (RFC 6749 §5.2); ``error`` is the OAuth2 error name."""

    code: ClassVar[str] = "grant.invalid"


class RefreshTokenInvalid(InputError):
    code: ClassVar[str] = "refresh.invalid"


class RefreshTokenReused(RefreshTokenInvalid):
    code: ClassVar[str] = "refresh.reused"


class AssertionInvalid(InputError):
    code: ClassVar[str] = "client.assertion"


class SessionMissing(InputError):
    """Client side: no stored login for this STS."""

    code: ClassVar[str] = "session.missing"
