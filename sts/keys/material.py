"""Key material: generation through the algorithm registry, and PKCS#8 serialization (RFC 5958)."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from realms.errors import ConfigError
from realms.tokens.algorithms import PrivateKey, PublicKey, algorithm_named
from realms.tokens.weak_keys import weak_key_reason

__all__ = [
    "PrivateKey",
    "generate_private_key",
    "load_private_key",
    "load_sealed_private_key",
    "private_key_bytes",
    "public_key_of",
]


def generate_private_key(algorithm: str) -> PrivateKey:
    """A fresh key for ``algorithm``: P-256 for ES256, Ed25519 for EdDSA, RSA-3072 for RS256/PS256."""
    key = algorithm_named(algorithm).generate()
    _refuse_weak(key)
    return key


def _refuse_weak(key: PrivateKey) -> None:
    # Why: a realm key whose private half is public (an RFC example, ROCA) lets anyone mint
    # tokens for the realm; such a key is never generated, loaded or used.
    weakness = weak_key_reason(key)
    if weakness is not None:
        raise ConfigError(f"realm signing key is {weakness}; rotate it (jobsts keys rotate)", field="signing_key")


def private_key_bytes(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(der: bytes) -> PrivateKey:
    key = serialization.load_der_private_key(der, password=None)
    # PrivateKey is the union of the registry's key types.
    if not isinstance(key, PrivateKey):
        raise ValueError("stored key is of an unsupported type")
    _refuse_weak(key)
    return key


def load_sealed_private_key(der: bytes) -> PrivateKey:
    """A key this STS generated, checked and sealed itself (AES-GCM under the master key).

    Why no RSA consistency check and no weak-key check here: both ran when the key was
    generated, and the AES-GCM tag proves the bytes are the ones we sealed then. The RSA
    check costs tens of milliseconds per key at every start; a key from anywhere else goes
    through ``load_private_key``.
    """
    key = serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, PrivateKey):
        raise ValueError("stored key is of an unsupported type")
    return key


def public_key_of(key: PrivateKey) -> PublicKey:
    return key.public_key()
