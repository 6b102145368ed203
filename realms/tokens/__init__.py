"""Token claim profiles and the one pinned JWS verifier shared by the STS and the agent.

One verifier, used on both sides, so that a rule proven once holds everywhere:
``verify(token, profile, resolver, audience=...)`` resolves trust from the issuer before
any key is chosen, pins the algorithm to the key, and checks typ, claims, audience and time.
"""

from realms.tokens.errors import (
    RealmUntrusted,
    TokenAlgorithmRefused,
    TokenAudience,
    TokenClaimInvalid,
    TokenError,
    TokenExpired,
    TokenHeaderRefused,
    TokenMalformed,
    TokenNotYetValid,
    TokenSignatureInvalid,
    TokenTypeMismatch,
    TokenUnknownKey,
)
from realms.tokens.keys import VerificationKey, jwk_thumbprint, public_jwk, verification_key_from_jwk
from realms.tokens.profiles import ACCESS_TOKEN, AGENT_TOKEN, JOB_TOKEN, SIGNING_ALGORITHMS, TokenProfile
from realms.tokens.verify import IssuerTrust, TrustResolver, VerifiedToken, verify

__all__ = [
    "ACCESS_TOKEN",
    "AGENT_TOKEN",
    "JOB_TOKEN",
    "SIGNING_ALGORITHMS",
    "IssuerTrust",
    "RealmUntrusted",
    "TokenAlgorithmRefused",
    "TokenAudience",
    "TokenClaimInvalid",
    "TokenError",
    "TokenExpired",
    "TokenHeaderRefused",
    "TokenMalformed",
    "TokenNotYetValid",
    "TokenProfile",
    "TokenSignatureInvalid",
    "TokenTypeMismatch",
    "TokenUnknownKey",
    "TrustResolver",
    "VerificationKey",
    "VerifiedToken",
    "jwk_thumbprint",
    "public_jwk",
    "verification_key_from_jwk",
    "verify",
]
