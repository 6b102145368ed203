"""Token refusals. Each has its own stable code so that logs and tests tell attacks apart."""

from __future__ import annotations

from typing import ClassVar

from realms.errors import InputError


class TokenError(InputError):
    """A refused token: 401 with a Bearer challenge on the API (RFC 6750 §3.1), ``invalid_client``
    on the OAuth endpoints, where the token authenticates the client."""

    code: ClassVar[str] = "token.invalid"
    status: ClassVar[int] = 401
    oauth_error: ClassVar[str] = "invalid_client"


class TokenMalformed(TokenError):
    """Not a compact JWS we accept: size, segments, base64url, UTF-8, JSON, duplicates, nesting."""

    code: ClassVar[str] = "token.malformed"


class TokenAlgorithmRefused(TokenError):
    code: ClassVar[str] = "token.algorithm"


class TokenTypeMismatch(TokenError):
    code: ClassVar[str] = "token.type"


class TokenHeaderRefused(TokenError):
    code: ClassVar[str] = "token.header"


class RealmUntrusted(TokenError):
    code: ClassVar[str] = "realm.untrusted"


class TokenUnknownKey(TokenError):
    code: ClassVar[str] = "token.unknown_key"


class TokenSignatureInvalid(TokenError):
    code: ClassVar[str] = "token.signature"


class TokenClaimInvalid(TokenError):
    code: ClassVar[str] = "token.claims"


class TokenExpired(TokenError):
    code: ClassVar[str] = "token.expired"


class TokenNotYetValid(TokenError):
    code: ClassVar[str] = "token.not_yet_valid"


class TokenAudience(TokenError):
    code: ClassVar[str] = "token.audience"


class TokenRevoked(TokenError):
    code: ClassVar[str] = "token.revoked"


class TokenReplayed(TokenError):
    code: ClassVar[str] = "token.replayed"


class TokenJobMismatch(TokenError):
    code: ClassVar[str] = "token.job_mismatch"
