"""Token claim profiles (design.md, "Tokens"): one rule per ``typ``."""

from __future__ import annotations

from dataclasses import dataclass

# Algorithms a realm may sign with. Asymmetric only: an HMAC algorithm would let anyone
# holding the public key mint tokens (the classic RS256→HS256 confusion).
SIGNING_ALGORITHMS: tuple[str, ...] = ("ES256", "EdDSA", "RS256", "PS256")
DEFAULT_ALGORITHM = "ES256"
MAX_LEEWAY_SECONDS = 60


@dataclass(frozen=True, slots=True)
class TokenProfile:
    """What a token of one kind must carry. ``typ`` is the JOSE header value (RFC 8725 §3.11)."""

    name: str
    typ: str
    required_claims: frozenset[str]
    string_claims: frozenset[str]


ACCESS_TOKEN = TokenProfile(
    name="access token",
    typ="at+jwt",  # RFC 9068 §2.1
    required_claims=frozenset({"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "realm", "groups"}),
    string_claims=frozenset({"iss", "sub", "jti", "realm", "preferred_username"}),
)

JOB_TOKEN = TokenProfile(
    name="job token",
    typ="job+jwt",
    required_claims=frozenset(
        {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "realm", "groups", "job_id", "job_digest"}
    ),
    string_claims=frozenset({"iss", "sub", "jti", "realm", "job_id", "job_digest"}),
)

AGENT_TOKEN = TokenProfile(
    name="agent token",
    typ="agent+jwt",
    required_claims=frozenset({"iss", "sub", "aud", "iat", "nbf", "exp", "jti"}),
    string_claims=frozenset({"iss", "sub", "jti"}),
)
