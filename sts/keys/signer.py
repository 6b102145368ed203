"""Compact JWS serialization for signing (RFC 7515 §7.1), straight on ``cryptography``.

The protected header of a key is serialized once per (kid, typ) and reused; the payload is
compact JSON. ES256 signatures are converted from DER to the fixed 64-byte r||s form
(RFC 7518 §3.4). Tokens are checked by the standard verifiers (PyJWT-based
``realms.tokens.verify`` and joserfc in the interop tests).
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sts.keys.material import PrivateKey

_SHA256 = hashes.SHA256()
_ECDSA = ec.ECDSA(_SHA256)
_PKCS1 = padding.PKCS1v15()
_PSS = padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=32)  # RFC 7518 §3.5: salt = hash size


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@functools.lru_cache(maxsize=256)
def _header_segment(algorithm: str, kid: str, typ: str) -> bytes:
    return _b64(json.dumps({"alg": algorithm, "kid": kid, "typ": typ}, separators=(",", ":")).encode())


def _signature(key: PrivateKey, algorithm: str, signing_input: bytes) -> bytes:
    if algorithm == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(signing_input, _ECDSA))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if algorithm == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(signing_input)
    if algorithm in ("RS256", "PS256") and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(signing_input, _PKCS1 if algorithm == "RS256" else _PSS, _SHA256)
    raise ValueError(f"key does not sign {algorithm}")


def sign_compact(claims: dict[str, Any], key: PrivateKey, algorithm: str, kid: str, typ: str) -> str:
    """``header.payload.signature`` with ``alg``, ``kid`` and ``typ`` in the protected header."""
    payload = _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    signing_input = _header_segment(algorithm, kid, typ) + b"." + payload
    return (signing_input + b"." + _b64(_signature(key, algorithm, signing_input))).decode("ascii")
