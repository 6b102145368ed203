"""Compact JWS serialization for signing (RFC 7515 §7.1); the signature comes from the algorithm registry.

The protected header of a key is serialized once per (kid, typ) and reused; the payload is
compact JSON. The registry's algorithm produces the JWS form of the signature (for ES256 the
fixed 64-byte r||s, RFC 7518 §3.4) and refuses a key that does not fit it. Tokens are checked
by ``realms.tokens.verify`` and by joserfc in the interop tests.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

from realms.tokens.algorithms import PrivateKey, algorithm_named


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@functools.lru_cache(maxsize=256)
def _header_segment(algorithm: str, kid: str, typ: str) -> bytes:
    return _b64(json.dumps({"alg": algorithm, "kid": kid, "typ": typ}, separators=(",", ":")).encode())


def sign_compact(claims: dict[str, Any], key: PrivateKey, algorithm: str, kid: str, typ: str) -> str:
    """``header.payload.signature`` with ``alg``, ``kid`` and ``typ`` in the protected header."""
    signer = algorithm_named(algorithm)
    payload = _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    signing_input = _header_segment(algorithm, kid, typ) + b"." + payload
    return (signing_input + b"." + _b64(signer.sign_pinned(signing_input, key))).decode("ascii")
