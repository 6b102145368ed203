"""Keys no verifier may trust, whoever publishes them: keys whose private half is printed in a
standard (RFC 7515, RFC 7517, RFC 8037 examples, ...; ``known_keys``) and RSA moduli made by
Infineon's RSALib (ROCA, CVE-2017-15361; ``roca``), whose private key can be computed.

One check, used wherever a key enters: agent trust bundles and fetched JWK Sets (the key is
skipped with a warning, and ``jobsts agent check`` reports it), realm signing keys at the STS
(refused at generation and at load), and node keys at registration (``key.weak``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, ClassVar

from realms.errors import InputError
from realms.tokens.known_keys import is_publicly_known
from realms.tokens.roca import is_roca_weak


class WeakKeyRefused(InputError):
    """A key whose private half is public (a published example) or computable (ROCA)."""

    code: ClassVar[str] = "key.weak"


def _modulus(jwk: Mapping[str, Any]) -> int | None:
    n = jwk.get("n")
    if jwk.get("kty") != "RSA" or not isinstance(n, str):
        return None
    try:
        return int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big")
    except (binascii.Error, ValueError):
        return None


def weak_key_reason(key: Any) -> str | None:
    """Why ``key`` (a ``cryptography`` key or a JWK mapping) must never be trusted, else ``None``."""
    citation = is_publicly_known(key)
    if citation is not None:
        # Why: anyone can sign with a key whose private half is printed in a standard.
        return f"a publicly known example key ({citation})"
    modulus = _modulus(key) if isinstance(key, Mapping) else None
    if (modulus is not None and is_roca_weak(modulus)) or (modulus is None and is_roca_weak(key)):
        return "a ROCA-weak RSA key (CVE-2017-15361: its private key can be computed)"
    return None
