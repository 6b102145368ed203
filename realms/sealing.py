"""Seal a small secret to a node's public key, so that only the holder of its node key opens it.

The STS seals a password given at submit for a remote host to the target agent's registered
node key; the agent opens it with that key. One format, ``v1.<kind>.<base64url>``:

* ``p256``: HPKE (RFC 9180) base mode, DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM,
  for an ES256 node key; the sealed bytes are ``enc || ciphertext`` (RFC 9180 §6.1);
* ``x25519``: the same with DHKEM(X25519) for an EdDSA (Ed25519) node key, converted to its
  X25519 form (RFC 7748 §4.1 birational map; the private scalar as in RFC 8032 §5.1.5);
* ``rsa``: RSA-OAEP-SHA256 (RFC 8017 §7.1) wraps a random AES-256-GCM key; ``wrapped || iv || ct``.

The context (the job id) is bound in: HPKE ``info`` for the HPKE kinds, AES-GCM AAD for RSA,
so a sealed copy moved onto another job does not open.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from realms.errors import JobstsError

VERSION = "v1"
INFO = b"jobsts sealed credentials v1\x00"
_P = 2**255 - 19
_SUITES = {
    "p256": hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    "x25519": hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
}
MAX_SEALED_CHARS = 4096

OpeningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


class SealUnsupportedKey(JobstsError):
    code = "seal.unsupported_key"


class SealedInvalid(JobstsError):
    code = "seal.invalid"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def x25519_public_from_ed25519(public: ed25519.Ed25519PublicKey) -> x25519.X25519PublicKey:
    """RFC 7748 §4.1: u = (1 + y) / (1 - y) mod p, y the Edwards coordinate of the key."""
    raw = bytearray(public.public_bytes_raw())
    raw[31] &= 0x7F  # drop the sign bit of x
    y = int.from_bytes(raw, "little")
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return x25519.X25519PublicKey.from_public_bytes(u.to_bytes(32, "little"))


def x25519_private_from_ed25519(private: ed25519.Ed25519PrivateKey) -> x25519.X25519PrivateKey:
    """RFC 8032 §5.1.5: the scalar is the first half of SHA-512(seed); X25519 clamps it."""
    seed = private.private_bytes_raw()
    return x25519.X25519PrivateKey.from_private_bytes(hashlib.sha512(seed).digest()[:32])


def _public_from_jwk(jwk: dict[str, Any]) -> tuple[str, Any]:
    kty, crv = jwk.get("kty"), jwk.get("crv")
    try:
        if kty == "EC" and crv == "P-256":
            x, y = (int.from_bytes(_unb64(str(jwk[n])), "big") for n in ("x", "y"))
            return "p256", ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        if kty == "OKP" and crv == "Ed25519":
            ed = ed25519.Ed25519PublicKey.from_public_bytes(_unb64(str(jwk["x"])))
            return "x25519", x25519_public_from_ed25519(ed)
        if kty == "RSA":
            n, e = (int.from_bytes(_unb64(str(jwk[m])), "big") for m in ("n", "e"))
            return "rsa", rsa.RSAPublicNumbers(e, n).public_key()
    except (KeyError, ValueError) as exc:
        raise SealUnsupportedKey(f"node key is not a usable {kty} key: {exc}") from None
    raise SealUnsupportedKey(f"cannot seal to a node key of type {kty}/{crv}; use ES256, EdDSA or RSA")


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def seal(jwk: dict[str, Any], plaintext: bytes, context: bytes) -> str:
    """Seal ``plaintext`` to the node key ``jwk`` (its registered public JWK), bound to ``context``."""
    kind, public = _public_from_jwk(jwk)
    if kind == "rsa":
        key, iv = AESGCM.generate_key(256), os.urandom(12)
        wrapped = public.encrypt(key, _oaep())
        sealed = wrapped + iv + AESGCM(key).encrypt(iv, plaintext, INFO + context)
    else:
        sealed = _SUITES[kind].encrypt(plaintext, public, info=INFO + context)
    return f"{VERSION}.{kind}.{_b64(sealed)}"


def open_sealed(private: OpeningKey, sealed: str, context: bytes) -> bytes:
    """Open a sealed value with the node's private key; anything wrong is ``seal.invalid``."""
    if not isinstance(sealed, str) or len(sealed) > MAX_SEALED_CHARS or sealed.count(".") != 2:
        raise SealedInvalid("sealed credentials are not in the v1.<kind>.<data> form")
    version, kind, data = sealed.split(".")
    if version != VERSION:
        raise SealedInvalid(f"sealed credentials of version {version[:8]!r} are not supported")
    try:
        raw = _unb64(data)
        if kind == "rsa" and isinstance(private, rsa.RSAPrivateKey):
            size = private.key_size // 8
            key = private.decrypt(raw[:size], _oaep())
            return AESGCM(key).decrypt(raw[size : size + 12], raw[size + 12 :], INFO + context)
        if kind == "p256" and isinstance(private, ec.EllipticCurvePrivateKey):
            return _SUITES[kind].decrypt(raw, private, info=INFO + context)
        if kind == "x25519" and isinstance(private, ed25519.Ed25519PrivateKey):
            return _SUITES[kind].decrypt(raw, x25519_private_from_ed25519(private), info=INFO + context)
    except (InvalidTag, ValueError) as exc:
        # Why: no detail of why opening failed: a wrong key and a tampered copy look the same.
        raise SealedInvalid(f"sealed credentials do not open with this node key ({type(exc).__name__})") from None
    raise SealedInvalid(f"sealed credentials of kind {kind[:16]!r} do not match this node key's type")
