"""Token claim profiles: one rule per ``typ`` (RFC 8725 §3.11), and the algorithms a realm may sign with."""

from __future__ import annotations

from dataclasses import dataclass

from realms.tokens.algorithms import ALGORITHMS, DEFAULT_ALGORITHM

__all__ = [
    "ACCESS_TOKEN",
    "AGENT_TOKEN",
    "DEFAULT_ALGORITHM",
    "JOB_TOKEN",
    "MAX_LEEWAY_SECONDS",
    "SIGNING_ALGORITHMS",
    "TokenProfile",
]

# The names in the algorithm registry; asymmetric only (see ``realms.tokens.algorithms``).
SIGNING_ALGORITHMS: tuple[str, ...] = tuple(ALGORITHMS)
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
    required_claims=frozenset({"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "cnf"}),
    string_claims=frozenset({"iss", "sub", "jti"}),
)
