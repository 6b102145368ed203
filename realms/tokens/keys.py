"""Verification keys and their JWK form (RFC 7517, RFC 7518 §6, RFC 7638 thumbprints)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from realms.tokens.profiles import SIGNING_ALGORITHMS

log = logging.getLogger(__name__)

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
MIN_RSA_BITS = 2048
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key pinned to exactly one algorithm: a key is never tried with another ``alg``."""

    kid: str
    algorithm: str
    public_key: PublicKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _required_members(key: PublicKey) -> dict[str, str]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        size = (key.curve.key_size + 7) // 8
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64(numbers.x.to_bytes(size, "big")),
            "y": _b64(numbers.y.to_bytes(size, "big")),
        }
    if isinstance(key, ed25519.Ed25519PublicKey):
        from cryptography.hazmat.primitives import serialization

        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
    rsa_numbers = key.public_numbers()
    return {"e": _b64_int(rsa_numbers.e), "kty": "RSA", "n": _b64_int(rsa_numbers.n)}


def jwk_thumbprint(key: PublicKey) -> str:
    """RFC 7638 §3: SHA-256 over the required members, sorted, no whitespace; base64url."""
    canonical = json.dumps(_required_members(key), sort_keys=True, separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode("utf-8")).digest())


def public_jwk(key: PublicKey, algorithm: str) -> dict[str, str]:
    """The public JWK to publish. Built from the public key alone, so it cannot hold private members."""
    return {**_required_members(key), "kid": jwk_thumbprint(key), "alg": algorithm, "use": "sig"}


def _expected_shape(algorithm: str) -> tuple[str, str | None]:
    return {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519"), "RS256": ("RSA", None), "PS256": ("RSA", None)}[
        algorithm
    ]


def verification_key_from_jwk(jwk: dict[str, Any], allowed_algorithms: frozenset[str]) -> VerificationKey | None:
    """Turn one published JWK into a pinned key, or ``None`` (with a warning) if it must be skipped.

    Skipped: keys without ``alg`` or ``kid``, algorithms outside the realm's pinned list, ``use``
    other than ``sig``, private members, curves or key types that do not match ``alg``, and RSA
    keys under 2048 bits.
    """
    kid, alg = jwk.get("kid"), jwk.get("alg")
    if not isinstance(kid, str) or not kid or len(kid) > 128:
        log.warning("skipping JWK without a usable kid")
        return None
    if not isinstance(alg, str) or alg not in SIGNING_ALGORITHMS or alg not in allowed_algorithms:
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
    kty, crv = _expected_shape(alg)
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        log.warning("skipping JWK %s: kty/crv do not match %s", kid, alg)
        return None
    try:
        key: PublicKey
        if kty == "EC":
            key = ec.EllipticCurvePublicNumbers(
                int.from_bytes(_unb64(jwk["x"]), "big"), int.from_bytes(_unb64(jwk["y"]), "big"), ec.SECP256R1()
            ).public_key()
        elif kty == "OKP":
            key = ed25519.Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"]))
        else:
            key = rsa.RSAPublicNumbers(
                int.from_bytes(_unb64(jwk["e"]), "big"), int.from_bytes(_unb64(jwk["n"]), "big")
            ).public_key()
            if key.key_size < MIN_RSA_BITS:
                log.warning("skipping JWK %s: RSA key of %d bits is too weak", kid, key.key_size)
                return None
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("skipping JWK %s: %s", kid, type(exc).__name__)
        return None
    return VerificationKey(kid=kid, algorithm=alg, public_key=key)
