"""Sealing to a node key: each key type round-trips, and a wrong key, job or tampered copy fails."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from realms.sealing import (
    OpeningKey,
    SealedInvalid,
    SealUnsupportedKey,
    open_sealed,
    seal,
    x25519_private_from_ed25519,
    x25519_public_from_ed25519,
)
from realms.tokens.keys import public_jwk

KEYS: list[tuple[str, OpeningKey]] = [
    ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
    ("RS256", rsa.generate_private_key(65537, 2048)),
]


@pytest.mark.parametrize(("algorithm", "key"), KEYS, ids=[a for a, _ in KEYS])
def test_round_trip_and_binding(algorithm: str, key: OpeningKey) -> None:
    jwk = public_jwk(key.public_key(), algorithm)
    sealed = seal(jwk, b"canary-secret", b"job-1")
    assert "canary" not in sealed
    assert open_sealed(key, sealed, b"job-1") == b"canary-secret"
    # Why: a sealed copy moved to another job must not open.
    with pytest.raises(SealedInvalid):
        open_sealed(key, sealed, b"job-2")
    version, kind, data = sealed.split(".")
    flipped = data[:-2] + ("A" if data[-2] != "A" else "B") + data[-1]
    with pytest.raises(SealedInvalid):
        open_sealed(key, f"{version}.{kind}.{flipped}", b"job-1")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        with pytest.raises(SealedInvalid):
            open_sealed(ed25519.Ed25519PrivateKey.generate(), sealed, b"job-1")


def test_another_key_of_the_same_type_cannot_open() -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    sealed = seal(public_jwk(key.public_key(), "ES256"), b"x", b"job")
    with pytest.raises(SealedInvalid):
        open_sealed(other, sealed, b"job")
    with pytest.raises(SealedInvalid, match="do not match"):
        open_sealed(ed25519.Ed25519PrivateKey.generate(), sealed, b"job")


def test_ed25519_conversion_agrees_with_x25519() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    derived = x25519_private_from_ed25519(key).public_key().public_bytes_raw()
    assert x25519_public_from_ed25519(key.public_key()).public_bytes_raw() == derived


def test_unsupported_keys_and_forms_are_refused() -> None:
    with pytest.raises(SealUnsupportedKey):
        seal({"kty": "oct", "k": "AAAA"}, b"x", b"job")
    with pytest.raises(SealedInvalid):
        open_sealed(ec.generate_private_key(ec.SECP256R1()), "v2.p256.AAAA", b"job")
    with pytest.raises(SealedInvalid):
        open_sealed(ec.generate_private_key(ec.SECP256R1()), "garbage", b"job")
