"""Verification keys and their JWK form (RFC 7517, RFC 7518 §6, RFC 7638 thumbprints).

The key types, curves and sizes each algorithm accepts, and the JWK conversions themselves,
come from the algorithm registry (``realms.tokens.algorithms``); this module holds the rules
about a published JWK as a whole: kid, alg, use and private members.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from realms.tokens.algorithms import ALGORITHMS, KeyRefused, PublicKey, algorithm_named, family_of

__all__ = [
    "PRIVATE_MEMBERS",
    "PublicKey",
    "VerificationKey",
    "jwk_thumbprint",
    "public_jwk",
    "verification_key_from_jwk",
]

log = logging.getLogger(__name__)

PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key pinned to exactly one algorithm: a key is never tried with another ``alg``."""

    kid: str
    algorithm: str
    public_key: PublicKey


def jwk_thumbprint(key: PublicKey) -> str:
    """RFC 7638 §3: SHA-256 over the required members, sorted, no whitespace; base64url."""
    return family_of(key).thumbprint(key)


def public_jwk(key: PublicKey, algorithm: str) -> dict[str, str]:
    """The public JWK to publish. Built from the public key alone, so it cannot hold private members."""
    family = algorithm_named(algorithm)
    return {**family.public_members(key), "kid": family.thumbprint(key), "alg": algorithm, "use": "sig"}


def verification_key_from_jwk(jwk: dict[str, Any], allowed_algorithms: frozenset[str]) -> VerificationKey | None:
    """Turn one published JWK into a pinned key, or ``None`` (with a warning) if it must be skipped.

    Skipped: keys without ``alg`` or ``kid``, algorithms outside the realm's pinned list, ``use``
    other than ``sig``, private members, and keys the registry refuses for their ``alg``
    (curves or key types that do not match, RSA keys under 2048 bits, malformed members).
    """
    kid, alg = jwk.get("kid"), jwk.get("alg")
    if not isinstance(kid, str) or not kid or len(kid) > 128:
        log.warning("skipping JWK without a usable kid")
        return None
    if not isinstance(alg, str) or alg not in ALGORITHMS or alg not in allowed_algorithms:
        log.warning("skipping JWK %s: algorithm %r is not allowed", kid, alg)
        return None
    if jwk.get("use", "sig") != "sig":
        log.warning("skipping JWK %s: use is %r, not sig", kid, jwk.get("use"))
        return None
    if PRIVATE_MEMBERS & jwk.keys():
        # Why: a JWKS that leaks private members means the publisher is broken; trusting
        # anything from it is unsafe, and using it would normalise the leak.
        log.warning("skipping JWK %s: it carries private key members", kid)
        return None
    try:
        key = ALGORITHMS[alg].public_key_from_jwk(jwk)
    except KeyRefused as refused:
        log.warning("skipping JWK %s: %s", kid, refused)
        return None
    return VerificationKey(kid=kid, algorithm=alg, public_key=key)
