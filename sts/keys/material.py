"""Key material: generation per algorithm (``cryptography``) and PKCS#8 serialization."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from realms.tokens.keys import PublicKey

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
RSA_BITS = 3072


def generate_private_key(algorithm: str) -> PrivateKey:
    """A fresh key for ``algorithm``: P-256 for ES256, Ed25519 for EdDSA, RSA-3072 for RS256/PS256."""
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise ValueError(f"unsupported algorithm {algorithm!r}")


def private_key_bytes(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private_key(der: bytes) -> PrivateKey:
    key: Any = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        raise ValueError("stored key is of an unsupported type")
    return key


def public_key_of(key: PrivateKey) -> PublicKey:
    return key.public_key()
