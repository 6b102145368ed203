"""Key material: generation through the algorithm registry, and PKCS#8 serialization (RFC 5958)."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from realms.tokens.algorithms import PrivateKey, PublicKey, algorithm_named

__all__ = ["PrivateKey", "generate_private_key", "load_private_key", "private_key_bytes", "public_key_of"]


def generate_private_key(algorithm: str) -> PrivateKey:
    """A fresh key for ``algorithm``: P-256 for ES256, Ed25519 for EdDSA, RSA-3072 for RS256/PS256."""
    return algorithm_named(algorithm).generate()


def private_key_bytes(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(der: bytes) -> PrivateKey:
    key = serialization.load_der_private_key(der, password=None)
    # PrivateKey is the union of the registry's key types.
    if not isinstance(key, PrivateKey):
        raise ValueError("stored key is of an unsupported type")
    return key


def public_key_of(key: PrivateKey) -> PublicKey:
    return key.public_key()
